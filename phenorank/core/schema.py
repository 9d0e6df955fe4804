"""The store's SQL schema: ordered, append-only migrations (the only DDL in phenorank).

Opening an older file applies the missing migrations in order, each in its own transaction, and
records it in ``schema_migrations``.
"""

from __future__ import annotations

_COMPARISON_VIEW_1 = """
CREATE OR REPLACE VIEW comparison AS
SELECT s.encoder, s.head, r.ranker, r.metric, r.reference, r.day,
       e.evaluator, e.name, e.value,
       e.params AS evaluator_params, r.ranker_params, r.metric_params, s.params AS encoder_params,
       r.ranking_id, s.embedding_set_id, e.created_at
FROM evaluations e
JOIN rankings r ON e.subject_kind = 'ranking' AND e.subject_id = r.ranking_id
JOIN embedding_sets s ON s.embedding_set_id = r.embedding_set_id
UNION ALL
SELECT s.encoder, s.head, NULL, NULL, NULL, NULL,
       e.evaluator, e.name, e.value,
       e.params, NULL, NULL, s.params,
       NULL, s.embedding_set_id, e.created_at
FROM evaluations e
JOIN embedding_sets s ON e.subject_kind = 'embedding_set' AND e.subject_id = s.embedding_set_id
"""


# A trained encoder's embedding set names its model; the model names its augmentation.
_COMPARISON_VIEW_3 = """
CREATE OR REPLACE VIEW comparison AS
SELECT s.encoder, m.augmentation, s.head, r.ranker, r.metric, r.reference, r.day,
       e.evaluator, e.name, e.value,
       e.params AS evaluator_params, r.ranker_params, r.metric_params, s.params AS encoder_params,
       r.ranking_id, s.embedding_set_id, m.model_id, e.created_at
FROM evaluations e
JOIN rankings r ON e.subject_kind = 'ranking' AND e.subject_id = r.ranking_id
JOIN embedding_sets s ON s.embedding_set_id = r.embedding_set_id
LEFT JOIN models m ON m.model_id = s.params->>'model'
UNION ALL
SELECT s.encoder, m.augmentation, s.head, NULL, NULL, NULL, NULL,
       e.evaluator, e.name, e.value,
       e.params, NULL, NULL, s.params,
       NULL, s.embedding_set_id, m.model_id, e.created_at
FROM evaluations e
JOIN embedding_sets s ON e.subject_kind = 'embedding_set' AND e.subject_id = s.embedding_set_id
LEFT JOIN models m ON m.model_id = s.params->>'model'
"""

# Evaluations carry a 95% interval (bootstrap over wells) next to their value.
_COMPARISON_VIEW_4 = _COMPARISON_VIEW_3.replace(
    "e.evaluator, e.name, e.value,", "e.evaluator, e.name, e.value, e.ci_low, e.ci_high,")

# Embedding sets say what one vector stands for (an image, an object crop, an aggregate).
_COMPARISON_VIEW_5 = _COMPARISON_VIEW_4.replace("s.head, r.ranker", "s.head, s.level, r.ranker").replace(
    "s.head, NULL, NULL, NULL, NULL,", "s.head, s.level, NULL, NULL, NULL, NULL,")

# Every result names the code that produced it (distribution version + source hash), and the
# comparison carries it so two results that differ only in code never share a cell unseen.
_COMPARISON_VIEW_6 = _COMPARISON_VIEW_5.replace(
    "r.ranking_id, s.embedding_set_id, m.model_id, e.created_at",
    "r.ranking_id, s.embedding_set_id, m.model_id, e.created_at, "
    "s.code AS encoder_code, r.ranker_code, r.metric_code, e.code AS evaluator_code").replace(
    "NULL, s.embedding_set_id, m.model_id, e.created_at",
    "NULL, s.embedding_set_id, m.model_id, e.created_at, s.code, NULL, NULL, e.code")

# Transformed sets (normalized, whitened, selected) say which chain made them.
_COMPARISON_VIEW_7 = _COMPARISON_VIEW_6.replace(
    "s.head, s.level, r.ranker", "s.head, s.level, coalesce(s.transforms, 'none') AS transforms, r.ranker").replace(
    "s.head, s.level, NULL, NULL, NULL, NULL,", "s.head, s.level, coalesce(s.transforms, 'none'), NULL, NULL, NULL, NULL,")

# Embedding sets of one encoder made from two preprocessings of the same files (a preprocessor
# chain at ingest) say which crop set they came from.
_COMPARISON_VIEW_8 = _COMPARISON_VIEW_7.replace(
    "r.ranker_code, r.metric_code, e.code AS evaluator_code",
    "r.ranker_code, r.metric_code, e.code AS evaluator_code, s.preprocess_key AS crop_set").replace(
    "s.code, NULL, NULL, e.code", "s.code, NULL, NULL, e.code, s.preprocess_key")

# Per-group results (a treatment's mAP and q-value) with the method that produced them.
_GROUP_RESULTS_VIEW = """
CREATE OR REPLACE VIEW group_results AS
SELECT s.encoder, s.head, s.level, coalesce(s.transforms, 'none') AS transforms, g.evaluator,
       p.params AS evaluator_params, g.group_key, g.name, g.value, g.subject_id AS embedding_set_id, g.params_hash
FROM evaluation_groups g
JOIN embedding_sets s ON g.subject_kind = 'embedding_set' AND s.embedding_set_id = g.subject_id
LEFT JOIN (SELECT subject_id, evaluator, params_hash, any_value(params) AS params FROM evaluations
           GROUP BY ALL) p ON p.subject_id = g.subject_id AND p.evaluator = g.evaluator AND p.params_hash = g.params_hash;
"""

_ITEM_FIELDS = ('path, plate, well, "row", col, day, condition, treatment, concentration, replicate, '
                'n_layers, height, width, dtype, edge')

# Everything an embedding can stand for, with its metadata: acquired images, the objects found
# in them (with their parent's metadata and their own measurements) and aggregates (groups).
_ITEMS_VIEW = f"""
CREATE OR REPLACE VIEW items AS
SELECT image_id, 'image' AS level, NULL AS parent_id, {_ITEM_FIELDS}, extra FROM images
UNION ALL
SELECT o.object_id, 'object', o.image_id, i.path, i.plate, i.well, i."row", i.col, i.day, i.condition,
       i.treatment, i.concentration, i.replicate, i.n_layers, o.height, o.width, i.dtype, i.edge,
       json_merge_patch(coalesce(i.extra, '{{}}'), json_object('object_label', o.label, 'object_area', o.area,
                        'object_x', o.x, 'object_y', o.y))
FROM objects o JOIN images i USING (image_id)
UNION ALL
SELECT group_id, level, NULL, {_ITEM_FIELDS}, extra FROM groups;
"""

_PROFILE_FIELDS = ('NULL, plate, well, "row", col, day, condition, treatment, concentration, replicate, '
                   'NULL, NULL, NULL, NULL, edge')

# Imported profiles (one row per well, image or cell, made elsewhere) are items without images.
_ITEMS_VIEW_7 = _ITEMS_VIEW.replace("FROM groups;", f"""FROM groups
UNION ALL
SELECT item_id, level, NULL, {_PROFILE_FIELDS}, extra FROM profiles;""")

# Ordered and append-only: a released migration is never edited, a change is a new entry.
MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "initial schema", """
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY, command VARCHAR, params JSON, config_hash VARCHAR,
    code_version VARCHAR, started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ, status VARCHAR,
    message VARCHAR);
CREATE TABLE images (
    image_id VARCHAR PRIMARY KEY, path VARCHAR, plate VARCHAR, well VARCHAR, "row" VARCHAR,
    col INTEGER, day INTEGER, condition VARCHAR, treatment VARCHAR, concentration DOUBLE,
    replicate INTEGER, n_layers INTEGER, height INTEGER, width INTEGER, dtype VARCHAR,
    extra JSON, run_id VARCHAR, ingested_at TIMESTAMPTZ);
CREATE TABLE crops (
    image_id VARCHAR, preprocess_key VARCHAR, size INTEGER, crop_x INTEGER, crop_y INTEGER,
    crop_side INTEGER, layers_used INTEGER[], pixels BLOB,
    PRIMARY KEY (image_id, preprocess_key));
CREATE TABLE rejects (
    path VARCHAR PRIMARY KEY, reason VARCHAR, run_id VARCHAR, rejected_at TIMESTAMPTZ);
CREATE TABLE embedding_sets (
    embedding_set_id VARCHAR PRIMARY KEY, encoder VARCHAR, head VARCHAR, params JSON,
    preprocess_key VARCHAR, dim INTEGER, feature_names VARCHAR[], run_id VARCHAR,
    created_at TIMESTAMPTZ);
CREATE TABLE embeddings (embedding_set_id VARCHAR, image_id VARCHAR, vector FLOAT[]);
CREATE TABLE rankings (
    ranking_id VARCHAR PRIMARY KEY, embedding_set_id VARCHAR, ranker VARCHAR, ranker_params JSON,
    metric VARCHAR, metric_params JSON, reference VARCHAR, day INTEGER, n_images INTEGER,
    fingerprint VARCHAR, run_id VARCHAR, created_at TIMESTAMPTZ);
CREATE TABLE scores (ranking_id VARCHAR, image_id VARCHAR, score DOUBLE, rank INTEGER);
CREATE TABLE evaluations (
    subject_kind VARCHAR, subject_id VARCHAR, evaluator VARCHAR, params JSON, params_hash VARCHAR,
    name VARCHAR, value DOUBLE, details JSON, run_id VARCHAR, created_at TIMESTAMPTZ);
""" + _COMPARISON_VIEW_1),
    (2, "edge wells, day-to-day pairs", """
ALTER TABLE images ADD COLUMN edge BOOLEAN;
CREATE TABLE pairs (
    plate VARCHAR, well VARCHAR, early_day INTEGER, late_day INTEGER,
    early_image_id VARCHAR, late_image_id VARCHAR,
    PRIMARY KEY (plate, well, early_day));
"""),
    (3, "trained models; augmentation in the comparison", """
CREATE TABLE models (
    model_id VARCHAR PRIMARY KEY, encoder VARCHAR, augmentation VARCHAR, encoder_params JSON,
    augmentation_params JSON, train_config JSON, preprocess_key VARCHAR, n_images INTEGER,
    checkpoint VARCHAR, history JSON, device VARCHAR, seconds DOUBLE, run_id VARCHAR,
    created_at TIMESTAMPTZ);
""" + _COMPARISON_VIEW_3),
    (4, "confidence intervals of evaluations", """
ALTER TABLE evaluations ADD COLUMN ci_low DOUBLE;
ALTER TABLE evaluations ADD COLUMN ci_high DOUBLE;
""" + _COMPARISON_VIEW_4),
    (5, "cell images: crop sets, objects, aggregates, items", """
CREATE TABLE crop_sets (
    preprocess_key VARCHAR PRIMARY KEY, kind VARCHAR, params JSON, run_id VARCHAR, created_at TIMESTAMPTZ);
INSERT INTO crop_sets SELECT preprocess_key, 'image', json_object('size', any_value(size)), NULL, NULL
    FROM crops GROUP BY preprocess_key;
CREATE TABLE objects (
    object_id VARCHAR PRIMARY KEY, image_id VARCHAR, preprocess_key VARCHAR, label INTEGER,
    x INTEGER, y INTEGER, width INTEGER, height INTEGER, area INTEGER);
CREATE TABLE segmented (
    image_id VARCHAR, preprocess_key VARCHAR, n_objects INTEGER, PRIMARY KEY (image_id, preprocess_key));
CREATE TABLE groups (
    group_id VARCHAR PRIMARY KEY, level VARCHAR, path VARCHAR, plate VARCHAR, well VARCHAR, "row" VARCHAR,
    col INTEGER, day INTEGER, condition VARCHAR, treatment VARCHAR, concentration DOUBLE,
    replicate INTEGER, n_layers INTEGER, height INTEGER, width INTEGER, dtype VARCHAR, edge BOOLEAN,
    extra JSON, n_members INTEGER);
CREATE TABLE group_members (group_id VARCHAR, member_id VARCHAR, PRIMARY KEY (group_id, member_id));
ALTER TABLE embedding_sets ADD COLUMN level VARCHAR DEFAULT 'image';
ALTER TABLE embedding_sets ADD COLUMN source_id VARCHAR;
""" + _ITEMS_VIEW + _COMPARISON_VIEW_5),
    (6, "code identity in every result", """
ALTER TABLE embedding_sets ADD COLUMN code VARCHAR;
ALTER TABLE rankings ADD COLUMN ranker_code VARCHAR;
ALTER TABLE rankings ADD COLUMN metric_code VARCHAR;
ALTER TABLE evaluations ADD COLUMN code VARCHAR;
ALTER TABLE models ADD COLUMN code VARCHAR;
""" + _COMPARISON_VIEW_6),
    (7, "imported profiles, transforms, per-group evaluation results", """
CREATE TABLE profiles (
    item_id VARCHAR PRIMARY KEY, dataset VARCHAR, level VARCHAR, plate VARCHAR, well VARCHAR, "row" VARCHAR,
    col INTEGER, day INTEGER, condition VARCHAR, treatment VARCHAR, concentration DOUBLE, replicate INTEGER,
    edge BOOLEAN, extra JSON, run_id VARCHAR, imported_at TIMESTAMPTZ);
ALTER TABLE embedding_sets ADD COLUMN transforms VARCHAR;
ALTER TABLE embedding_sets ADD COLUMN transform_reference VARCHAR;
CREATE TABLE evaluation_groups (
    subject_kind VARCHAR, subject_id VARCHAR, evaluator VARCHAR, params_hash VARCHAR, group_key VARCHAR,
    name VARCHAR, value DOUBLE);
""" + _ITEMS_VIEW_7 + _COMPARISON_VIEW_7 + ";" + _GROUP_RESULTS_VIEW),
    (8, "analysis: dose-response fits, hit calls, plate and image QC", """
CREATE TABLE dose_response (
    readout_kind VARCHAR, readout_source VARCHAR, readout VARCHAR, params JSON, params_hash VARCHAR,
    treatment VARCHAR, status VARCHAR, reason VARCHAR, n_wells INTEGER, n_doses INTEGER, min_dose DOUBLE,
    max_dose DOUBLE, ec50 DOUBLE, ec50_low DOUBLE, ec50_high DOUBLE, hill_slope DOUBLE, bottom DOUBLE, top DOUBLE,
    emax DOUBLE, emax_relative DOUBLE, auc DOUBLE, r2 DOUBLE, f_test_p DOUBLE, code VARCHAR, run_id VARCHAR,
    created_at TIMESTAMPTZ);
CREATE TABLE hits (
    readout_kind VARCHAR, readout_source VARCHAR, readout VARCHAR, params JSON, params_hash VARCHAR,
    group_key VARCHAR, treatment VARCHAR, condition VARCHAR, n INTEGER, n_control INTEGER, median DOUBLE,
    control_median DOUBLE, p_value DOUBLE, q_value DOUBLE, holm_p DOUBLE, cohens_d DOUBLE, cliffs_delta DOUBLE,
    kruskal_p DOUBLE, hit BOOLEAN, code VARCHAR, run_id VARCHAR, created_at TIMESTAMPTZ);
CREATE TABLE plate_qc (
    readout_kind VARCHAR, readout_source VARCHAR, readout VARCHAR, params JSON, params_hash VARCHAR,
    plate VARCHAR, n_wells INTEGER, n_control INTEGER, control_cv DOUBLE, edge_difference DOUBLE, edge_p DOUBLE,
    z_prime DOUBLE, ssmd DOUBLE, passed BOOLEAN, reasons VARCHAR, code VARCHAR, run_id VARCHAR,
    created_at TIMESTAMPTZ);
CREATE TABLE image_qc (
    readout_kind VARCHAR, readout_source VARCHAR, readout VARCHAR, params JSON, params_hash VARCHAR,
    image_id VARCHAR, plate VARCHAR, focus DOUBLE, blurred BOOLEAN, outlier BOOLEAN, readout_z DOUBLE,
    code VARCHAR, run_id VARCHAR, created_at TIMESTAMPTZ);
"""),
    (9, "the potency view (dose-response fits with the method behind their readout); hits' mean and interval", """
CREATE OR REPLACE VIEW potency AS
SELECT CASE WHEN d.readout_kind = 'ranking'
            THEN e.encoder || '/' || e.head || ' ' || r.ranker || ' ' || r.metric || ' ref=' || r.reference
            ELSE coalesce(f.encoder || '/' || f.head || ' ', '') || d.readout END AS readout_label,
       d.*
FROM dose_response d
LEFT JOIN rankings r ON d.readout_kind = 'ranking' AND r.ranking_id = d.readout_source
LEFT JOIN embedding_sets e ON e.embedding_set_id = r.embedding_set_id
LEFT JOIN embedding_sets f ON d.readout_kind <> 'ranking' AND f.embedding_set_id = d.readout_source;
ALTER TABLE hits ADD COLUMN mean DOUBLE;
ALTER TABLE hits ADD COLUMN ci_low DOUBLE;
ALTER TABLE hits ADD COLUMN ci_high DOUBLE;
"""),
    (10, "where a rejected file would have gone: its plate, well and day (the plate map shows rejected wells)", """
ALTER TABLE rejects ADD COLUMN plate VARCHAR;
ALTER TABLE rejects ADD COLUMN well VARCHAR;
ALTER TABLE rejects ADD COLUMN day INTEGER;
"""),
    (11, "the reconstruction autoencoder's new name: cae is reconstruction-cae (seed 000's cae predicts day 10)", """
UPDATE models SET encoder = 'reconstruction-cae' WHERE encoder = 'cae';
UPDATE embedding_sets SET encoder = 'reconstruction-cae' WHERE encoder = 'cae';
"""),
    (12, "image artifact statistics per layer at ingest, and the image flags drawn from them (seed 001's QC)", """
CREATE TABLE image_stats (
    image_id VARCHAR, layer INTEGER, focus_slope DOUBLE, percent_maximal DOUBLE, mean DOUBLE, sd DOUBLE,
    median DOUBLE, q01 DOUBLE, q25 DOUBLE, q75 DOUBLE, q99 DOUBLE, total DOUBLE, spectrum_window INTEGER,
    code VARCHAR);
CREATE TABLE image_flags (
    image_id VARCHAR, plate VARCHAR, blurred BOOLEAN, saturated BOOLEAN, intensity_outlier BOOLEAN,
    flagged BOOLEAN, reasons VARCHAR, params JSON, code VARCHAR, run_id VARCHAR, created_at TIMESTAMPTZ);
"""),
    (13, "the comparison names each embedding set's crop set (two preprocessings of one image set)", """
""" + _COMPARISON_VIEW_8),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]


def schema_objects() -> tuple[list[str], list[str]]:
    """(tables, views) that the migrations create, in the order they first appear."""
    import re

    text = "\n".join(sql for _, _, sql in MIGRATIONS)
    tables = re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", text)
    views = re.findall(r"CREATE (?:OR REPLACE )?VIEW (\w+)", text)
    return list(dict.fromkeys(tables)), list(dict.fromkeys(views))
