"""Built-in plugins. Each module is loaded through the ``phenorank`` entry-point group exactly
like a third-party plugin; copy one as a template for your own."""
