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
]

SCHEMA_VERSION = MIGRATIONS[-1][0]
