"""Registries: pull and push images over the Registry v2 API (distribution), and login.

A service below the Engine: `service.Registries` is handed the image store, the images
service's lock and the event bus, never the Engine. `client` speaks HTTP (httpx, on trio
through anyio), `auth` holds credentials and the token flow, `manifests` the formats,
`pull` and `push` the two transfers with Docker's progress messages.
"""
