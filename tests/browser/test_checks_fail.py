"""The page checks reject a page with each kind of fault (their nearest wrong answers: a page that only looks
fine because nothing was checked)."""

from browserkit import page_problems, serve

BAD = r"""<!doctype html><html><head><link rel="icon" href="data:,"></head><body><article>
<p>raw display maths $$x^2$$ left in the text</p>
<p><span class="math">\(x\)</span> never typeset</p>
<img src="missing.png">
<script src="https://cdn.example.org/lib.js"></script>
<script>console.error("boom")</script>
</article></body></html>"""

GOOD = """<!doctype html><html><head><link rel="icon" href="data:,"></head><body><article><p>fine</p></article></body></html>"""


def test_each_fault_is_reported(watched, tmp_path):
    (tmp_path / "bad.html").write_text(BAD)
    (tmp_path / "good.html").write_text(GOOD)
    url, server = serve(tmp_path)
    try:
        page, watch = watched()
        page.goto(f"{url}/good.html", wait_until="load")
        assert page_problems(page, watch) == []
        page, watch = watched()
        page.goto(f"{url}/bad.html", wait_until="load")
        text = " | ".join(page_problems(page, watch, expect_maths=True))
    finally:
        server.shutdown()
    for fault in ("maths left unrendered", "raw $$", "images not loaded", "console errors", "leaving 127.0.0.1"):
        assert fault in text, f"not reported: {fault} (got: {text})"
