"""Running recipes: the executor schedules items through transcription, then each item's
task graph, under per-endpoint limits; ``services`` is the seam to the APIs, so tests run
each stage against fakes. ``planning`` counts the same decisions for ``plan``."""
