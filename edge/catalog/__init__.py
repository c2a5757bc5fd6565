"""Products: validation, the feed importer, catalog lists for templates."""
