"""Training helpers shared by train_genre.py and train_caption.py."""
