"""Every way people write a focal stack to TIFF is read back as the same layers, by the loader
and through `phenorank ingest`; files that cannot be read safely are refused with the reason."""

import resource
import time

import numpy as np
import pytest
import tifffile

from conftest import rows

from phenorank.plugins.loaders import TiffChannelsLoader, TiffStackLoader, read_series

H, W = 48, 56
rng = np.random.default_rng(7)
STACK5 = rng.integers(0, 65535, (5, H, W), dtype=np.uint16)
STACK3 = STACK5[:3].copy()
STACK4 = STACK5[:4].copy()


def _pages(path, stack, **kwargs):
    with tifffile.TiffWriter(path) as writer:
        for layer in stack:
            writer.write(layer, **kwargs)


# name -> (writer, the layers it must read back as)
LAYOUTS = {
    "imwrite-3-layers-planar-samples": (lambda p: tifffile.imwrite(p, STACK3), STACK3),
    "imwrite-4-layers-planar-samples": (lambda p: tifffile.imwrite(p, STACK4), STACK4),
    "imwrite-5-layers": (lambda p: tifffile.imwrite(p, STACK5), STACK5),
    "minisblack-3-layers": (lambda p: tifffile.imwrite(p, STACK3, photometric="minisblack"), STACK3),
    "interleaved-16-bit-samples": (lambda p: tifffile.imwrite(p, np.moveaxis(STACK3, 0, -1), photometric="rgb"),
                                   STACK3),
    "imagej-zyx": (lambda p: tifffile.imwrite(p, STACK5, imagej=True, metadata={"axes": "ZYX"}), STACK5),
    "imagej-tzcyx-singletons": (lambda p: tifffile.imwrite(p, STACK5[None, :, None], imagej=True,
                                                           metadata={"axes": "TZCYX"}), STACK5),
    "ome-z": (lambda p: tifffile.imwrite(p, STACK5, ome=True, metadata={"axes": "ZYX"}), STACK5),
    "ome-tczyx-singletons": (lambda p: tifffile.imwrite(p, STACK5[None, None], ome=True,
                                                        metadata={"axes": "TCZYX"}), STACK5),
    "pages-loop": (lambda p: _pages(p, STACK5), STACK5),
    "pages-loop-not-contiguous": (lambda p: _pages(p, STACK5, contiguous=False), STACK5),
    "pages-loop-no-metadata": (lambda p: _pages(p, STACK5, metadata=None), STACK5),
    "single-layer": (lambda p: tifffile.imwrite(p, STACK5[0]), STACK5[:1]),
    "zlib": (lambda p: tifffile.imwrite(p, STACK5, compression="zlib"), STACK5),
    "lzw": (lambda p: tifffile.imwrite(p, STACK5, compression="lzw"), STACK5),
    "zstd": (lambda p: tifffile.imwrite(p, STACK5, compression="zstd"), STACK5),
    "big-endian": (lambda p: tifffile.imwrite(p, STACK5, byteorder=">"), STACK5),
    "bigtiff": (lambda p: tifffile.imwrite(p, STACK5, bigtiff=True), STACK5),
    "tiled": (lambda p: tifffile.imwrite(p, STACK5, tile=(16, 16)), STACK5),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_layout_reads_back_as_its_layers(tmp_path, layout):
    write, expected = LAYOUTS[layout]
    path = tmp_path / f"{layout}.tif"
    write(str(path))
    layers = TiffStackLoader().read(str(path))
    assert layers.shape == expected.shape and layers.dtype.newbyteorder("=") == np.uint16
    np.testing.assert_array_equal(np.asarray(layers), expected)


def test_eight_bit_samples_are_colour_unless_the_axes_say_layers(tmp_path):
    path = tmp_path / "rgb8.tif"
    tifffile.imwrite(path, (STACK3 >> 8).astype(np.uint8))
    with pytest.raises(ValueError, match=r"8-bit colour image .*-p tiff-stack.axes=ZYX"):
        TiffStackLoader().read(str(path))
    layers = TiffStackLoader(axes="zyx").read(str(path))
    np.testing.assert_array_equal(layers, (STACK3 >> 8).astype(np.uint8))
    with pytest.raises(ValueError, match="axes 'ZX' do not fit the data of shape"):
        TiffStackLoader(axes="ZX").read(str(path))
    channels = TiffChannelsLoader().read(str(path))  # the channel loader takes colour as channels
    assert channels.shape == (3, H, W)


def test_pages_that_disagree_are_refused_naming_the_page(tmp_path):
    path = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(STACK5[0])
        writer.write(STACK5[1])
        writer.write(STACK5[2, :20])
    with pytest.raises(ValueError, match=r"page 0 is \(48, 56\) uint16, page 2 is \(20, 56\) uint16"):
        TiffStackLoader().read(str(path))


def bomb(path, side=60000):
    """A few hundred bytes whose header claims a side x side 16-bit image."""
    tifffile.imwrite(path, np.zeros((64, 64), np.uint16), compression="zlib", rowsperstrip=64)
    with tifffile.TiffFile(path, mode="r+") as tif:
        for tag in ("ImageWidth", "ImageLength", "RowsPerStrip"):
            tif.pages[0].tags[tag].overwrite(side)


def test_an_allocation_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.tif"
    bomb(path)
    assert path.stat().st_size < 1000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"would decode to 3,600,000,000 pixels .*ingest --max-pixels"):
        read_series(str(path))
    assert time.perf_counter() - started < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # kB: nothing was allocated


def test_ingest_stores_every_layout_with_its_layer_count(tmp_path, invoke):
    folder = tmp_path / "stacks"
    folder.mkdir()
    lines = ["path,condition"]
    for name, (write, expected) in LAYOUTS.items():
        write(str(folder / f"{name}.tif"))
        lines.append(f"{name}.tif,control")
    bomb(folder / "bomb.tif")
    lines.append("bomb.tif,control")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    result = invoke("ingest", folder)
    stored = dict(rows(invoke.db, "select regexp_extract(path, '([^/]+)\\.tif$', 1), n_layers from images"))
    rejects = dict(rows(invoke.db, "select regexp_extract(path, '([^/]+)\\.tif$', 1), reason from rejects"))
    # two writers produce byte-identical files: the second is a duplicate of the first, not lost
    duplicates = {name for name, reason in rejects.items() if reason.startswith("same content as")}
    assert duplicates == {"imagej-tzcyx-singletons", "pages-loop-not-contiguous"}
    assert stored == {name: len(expected) for name, (_, expected) in LAYOUTS.items() if name not in duplicates}
    assert set(rejects) - duplicates == {"bomb"} and "would decode to 3,600,000,000 pixels" in rejects["bomb"]
    assert f"ingested {len(LAYOUTS) - 2}, unchanged 0, metadata updated 0, rejected 3" in result.output
    # a lower limit refuses compressed stacks before decoding them; memory-mapped ones cost nothing
    again = invoke("ingest", folder, "--max-pixels", 5 * H * W - 1, "--size", 32)
    assert "would decode to 13,440 pixels" in again.output


def test_a_tifffile_complaint_about_one_file_is_not_pinned_on_another_read_at_the_same_time():
    # ingest reads on several threads; tifffile logs a damaged file's problems, and those must reach
    # only the read that caused them (a good file was once rejected for a bomb's complaint)
    import logging
    import threading

    from phenorank.plugins.loaders import _tifffile_complaints

    inside, done = threading.Event(), threading.Event()
    collected: list[str] = []

    def reader():
        with _tifffile_complaints() as complaints:
            inside.set()
            done.wait(5)
            collected.extend(complaints)

    thread = threading.Thread(target=reader)
    thread.start()
    inside.wait(5)
    with _tifffile_complaints() as mine:
        logging.getLogger("tifffile").error("bomb.tif: shaped series shape does not match page shape")
    done.set()
    thread.join()
    assert mine == ["bomb.tif: shaped series shape does not match page shape"] and collected == []
