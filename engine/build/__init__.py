"""The classic builder: images from a Dockerfile and a context (docs/build.md)."""
