"""``codec demo``: static listening-test and comparison pages (samples, MUSHRA, images).

:func:`neuralcodec.demo.site.build_site` writes the site; :mod:`neuralcodec.demo.scores`
aggregates MUSHRA listener files. Templates, JS and CSS live in the repository's ``demos/``.
"""
