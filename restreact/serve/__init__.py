"""OpenAI-compatible HTTP, both ways: a server around the slot engine (`python -m restreact.serve`) and a client
that lets the ranker, the judge and the pilot's policy be any OpenAI-compatible server (vLLM, SGLang, a hosted
API, or this one) through a model reference `openai:MODEL@http://host:port/v1`.

Modules: `openai_shapes` (requests checked into settings, responses and errors in OpenAI's JSON shapes),
`worker` (the thread that owns the engine), `scoring` (top-k log-probs), `app` (the HTTP routes), `loading`
(what a checkpoint folder or run folder holds), `__main__` (the command line), `client` (the other way).
Nothing is imported here, so that `restreact.rest` can import the client without loading the server.
"""
