"""Official checkpoint catalog, the local weights folder and the downloader."""
