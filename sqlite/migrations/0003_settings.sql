-- Store-wide settings; embedding_model names the model the stored vectors
-- come from (Store.SetEmbeddingModel).
CREATE TABLE settings (
	name  TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
