"""``python -m denoise_cli`` runs the ``denoise`` command."""
from .cli import main

if __name__ == "__main__":
    main()
