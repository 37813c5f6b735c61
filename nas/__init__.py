"""ofa-nas: the product's face: search engine, export, experiment store, jobs, REST API and CLI."""
