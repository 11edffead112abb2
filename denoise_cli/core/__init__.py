"""The foundation: image files (:mod:`.imageio`), quality metrics, synthetic noise, devices and errors.

Imports nothing else of the package; every other layer may import it.
"""
