"""Presentation: pure functions of a results folder. :mod:`.figures` (each figure's data and drawing),
:mod:`.report` (the self-contained HTML report), :mod:`.comparison` (two folders, engine by engine),
:mod:`.html` (the page kit every report is built from)."""
