# `python launch.py ...` in the repository: the installed `hrgan-jax` command, whose
# flags, modes and help live in hrgan_jax/main.py (`python launch.py --help`).
from hrgan_jax.main import run

if __name__ == "__main__":
    run()
