"""Reviewer, adjudicator and lead pages: server-rendered HTML over the stage modules.

:func:`hilt.web.pages.mount` adds the pages to the HTTP application. Pages translate
forms to stage-module calls and stage results to templates; they hold no review logic.
See ``docs/web.md``.
"""
