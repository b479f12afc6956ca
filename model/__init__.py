"""Model side: AlexNet variants, datasets, training and export (needs torch)."""
