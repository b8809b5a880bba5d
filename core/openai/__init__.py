"""OpenAI compatibility: translation of requests and answers, streamed chunks, files and batches."""
