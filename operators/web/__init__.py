"""Web operators: `web.crawl` (polite crawler), `web.render` (Chromium rendering into samples) and
`web.warc` (archived pages rendered from the archive alone). Playwright loads only inside `setup()`."""

from operators.web import crawl, render, warc  # noqa: F401  (registers the operators)
