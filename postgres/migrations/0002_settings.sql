-- Store-wide settings; embedding_model names the model the stored vectors
-- come from (Store.SetEmbeddingModel).
CREATE TABLE settings (
	name  text PRIMARY KEY,
	value text NOT NULL
);
