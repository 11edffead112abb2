"""``python -m denoise_cli`` runs the ``denoise`` command."""
from .cli import run

if __name__ == "__main__":
    run()
