"""Importers: other tools' eval configs turned into a gpo-action project (`gpo-action import`)."""
