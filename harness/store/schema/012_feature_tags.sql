-- 012: feature categories recorded by hand (issue 8: `evalrun tag`, `evalrun features
-- --category`). Free text; the paper's categories (people, countries, code, list-positions,
-- safety-relevant, ...) are suggested by `evalrun tag --help`.
CREATE TABLE feature_tags (
    sae_id      INTEGER NOT NULL REFERENCES saes(id),
    feature_idx INTEGER NOT NULL,
    category    TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL,
    PRIMARY KEY (sae_id, feature_idx, category)
);
CREATE INDEX feature_tags_category ON feature_tags(category);
