"""``python -m denoise_cli`` runs the ``denoise`` command."""
from .interfaces.cli import run

if __name__ == "__main__":
    run()
