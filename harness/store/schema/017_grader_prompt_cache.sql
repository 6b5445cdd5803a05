-- 017: the provider's prompt cache in the cost ledger (issue 19.3). Of a request's input tokens
-- (tokens_in: all of them, cached or not), tokens_cache_read were read from the provider's
-- prompt cache (Anthropic usage.cache_read_input_tokens, OpenAI
-- usage.prompt_tokens_details.cached_tokens) and tokens_cache_write written to it (Anthropic
-- usage.cache_creation_input_tokens). grader_usage.cost_usd is the real price (cached tokens at
-- the provider's discount); cost_nocache_usd what the same tokens cost at the full input price.
-- Rows from before 015 had no cached tokens: 0, and their cost stays as it was.
ALTER TABLE grader_usage ADD COLUMN tokens_cache_read INTEGER NOT NULL DEFAULT 0;
ALTER TABLE grader_usage ADD COLUMN tokens_cache_write INTEGER NOT NULL DEFAULT 0;
ALTER TABLE grader_usage ADD COLUMN cost_nocache_usd REAL;
UPDATE grader_usage SET cost_nocache_usd = cost_usd;
ALTER TABLE grader_requests ADD COLUMN tokens_cache_read INTEGER;
ALTER TABLE grader_requests ADD COLUMN tokens_cache_write INTEGER;
