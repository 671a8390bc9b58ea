"""Drives the web console in Debian's Chromium through Playwright, as tests/console.rs asks.

Usage: console_browser.py BASE_URL ADMIN_TOKEN SCREENSHOT_DIR [paint]
The server at BASE_URL serves the default image plus `notes` (an API-created server with a named
operation), set up by the Rust test, and `PETS_BASE_URL` points the Petstore example at a mock. Prints
one JSON report on stdout; exits non-zero on a failed check. Every request the browser makes must stay
on 127.0.0.1, and no page may log an error. With `paint`, only signs in and measures the first paint of
the server list (the benchmark report runs it so against a release build).
"""

import asyncio
import json
import os
import re
import sys
import tempfile
from urllib.parse import urlparse

from playwright.async_api import async_playwright, expect

ARGS = ["--headless=new", "--no-sandbox", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]
BASE, TOKEN, SHOTS = sys.argv[1], sys.argv[2], sys.argv[3]
PAINT_ONLY = sys.argv[4:] == ["paint"]
PETSTORE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "examples", "petstore.yaml")
SECRET_VALUE = "s3cr3t-value-never-shown-7f2a"
BROKEN = 'fn main(endpoint, method, data) {\n    let x = ;\n}\n'


class Watch:
    """Everything the browser sent and every answer's body, for the checks that span the whole run."""

    def __init__(self):
        self.foreign, self.errors, self.bodies = [], [], []

    async def route(self, route):
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith("data:") or host == "127.0.0.1":
            await route.continue_()
        else:
            self.foreign.append(route.request.url)
            await route.abort()

    def console(self, message):
        # Chromium logs every 4xx answer; the two the run provokes on purpose are not errors of a page.
        provoked = message.location.get("url") in (
            BASE + "/ui/login", BASE + "/ui/servers/notes/source", BASE + "/ui/servers/linked/connect",
            BASE + "/ui/import/operations")
        if message.type == "error" and not (provoked and message.text.startswith("Failed to load resource")):
            self.errors.append(message.text)

    async def response(self, response):
        try:
            self.bodies.append(await response.text())
        except Exception:  # redirects and downloads have no body to read
            pass


async def shot(page, name):
    await page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


async def login(page, report):
    await page.goto(BASE + "/ui/servers/echo")
    await expect(page).to_have_url(BASE + "/ui/login")
    await shot(page, "login")
    await page.get_by_test_id("login-token").fill("not-the-token")
    async with page.expect_response(BASE + "/ui/login") as answer:
        await page.get_by_test_id("login-submit").click()
    assert (await answer.value).status == 401
    await expect(page.get_by_test_id("error")).to_contain_text("not the admin token")
    await page.get_by_test_id("login-token").fill(TOKEN)
    await page.get_by_test_id("login-submit").click()
    await expect(page).to_have_url(BASE + "/ui")
    cookie = next(c for c in await page.context.cookies() if c["name"] == "switchboard_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui", cookie
    report["cookie"] = {k: cookie[k] for k in ("httpOnly", "sameSite", "path")}


PAINT = ("() => { const p = performance.getEntriesByName('first-contentful-paint')[0];"
         " const n = performance.getEntriesByType('navigation')[0];"
         " return { fcp: p ? p.startTime : null, bytes: n.transferSize }; }")


async def paints(page, path, times=5):
    """The median first contentful paint of `path` over `times` loads, and its size."""
    measured = []
    for _ in range(times):
        await page.goto(BASE + path)
        while await page.evaluate("performance.getEntriesByName('first-contentful-paint').length") == 0:
            await asyncio.sleep(0.01)
        measured.append(await page.evaluate(PAINT))
    median = sorted(m["fcp"] for m in measured)[times // 2]
    return round(median, 1), measured[-1]["bytes"]


async def first_paint(page, report, times=5):
    """First paint of the list of every server, beside the smallest console page (the sign-in form) as
    the browser's own floor on this machine, measured in the same run."""
    floor, _ = await paints(page, "/ui/login", times)
    fcp, size = await paints(page, "/ui", times)
    rows = await page.get_by_test_id("server-row").count()
    report["list"] = {"rows": rows, "first_contentful_paint_ms": fcp, "bytes": size,
                      "sign_in_page_first_contentful_paint_ms": floor}
    assert rows >= 100, rows
    await page.screenshot(path=f"{SHOTS}/servers.png")


async def search(page):
    await page.locator("h1").click()
    await page.keyboard.press("/")
    await expect(page.get_by_test_id("server-search")).to_be_focused()
    await page.keyboard.type("payment")
    await expect(page.locator('[data-testid=server-row][data-name=stripe]')).to_be_visible()
    await expect(page.locator('[data-testid=server-row][data-name=github]')).to_have_count(0)
    await page.screenshot(path=f"{SHOTS}/search.png")
    await page.get_by_test_id("server-search").fill("note")
    await expect(page.get_by_test_id("server-row")).to_have_count(1)
    await page.get_by_role("link", name="notes").click()
    await expect(page).to_have_url(BASE + "/ui/servers/notes")


async def try_it(page):
    await page.get_by_test_id("try-endpoint").fill("/hello?x=1")
    await page.get_by_test_id("try-method").select_option("POST")
    await page.get_by_test_id("try-data").fill('{"n": 2}')
    await page.get_by_test_id("try-submit").click()
    output = page.get_by_test_id("try-output")
    await expect(output).to_contain_text('"endpoint": "/hello?x=1"')
    await expect(output).to_contain_text('"n": 2')
    await expect(page.get_by_test_id("try-status")).to_have_text("200")
    cid = await page.get_by_test_id("server-cid").inner_text()
    await expect(page.get_by_test_id("try-cid")).to_have_text(cid)
    operation = page.locator('[data-operation=get_note]')
    await operation.locator("summary").click()
    await expect(operation.locator("label.req")).to_have_text(["id"])
    await operation.locator("input[name=id]").fill("42")
    await operation.locator("select[name=verbose]").select_option("true")
    await operation.get_by_test_id("operation-submit").click()
    await expect(output).to_contain_text('"endpoint": "/notes/42?verbose=true"')
    await shot(page, "server")


async def invoke_notes(page):
    answer = await page.request.get(BASE + "/notes/x")
    return answer.status, (await answer.json() if answer.ok else None)


async def set_source(page, text):
    editor = page.get_by_test_id("editor")
    await editor.click()
    await page.keyboard.press("Control+a")
    await page.keyboard.press("Delete")
    await editor.fill(text)


async def edit(page, report):
    before = await page.get_by_test_id("server-cid").inner_text()
    source = await page.get_by_test_id("editor").inner_text()
    await set_source(page, BROKEN)
    await page.keyboard.press("Control+s")
    error = page.get_by_test_id("compile-error")
    await expect(error).to_be_visible()
    assert await error.get_attribute("data-line") == "2", await error.get_attribute("data-line")
    await expect(page.locator(".cm-error-line")).to_have_count(1)
    await shot(page, "compile-error")
    status, body = await invoke_notes(page)
    assert status == 200 and body["version"] == 1, (status, body)
    assert await page.get_by_test_id("server-cid").inner_text() == before
    await set_source(page, source.replace("version: 1", "version: 2"))
    await page.get_by_test_id("save").click()
    await expect(page.get_by_test_id("saved")).to_be_visible()
    status, body = await invoke_notes(page)
    assert status == 200 and body["version"] == 2, (status, body)
    await expect(page.get_by_test_id("history-row")).to_have_count(2)
    report["edit"] = {"refused_at_line": 2, "live_after_save": True}


async def diff_and_rollback(page):
    await page.get_by_test_id("diff").click()
    diff = page.get_by_test_id("diff-output")
    await expect(diff.locator(".del", has_text="version: 1")).to_have_count(1)
    await expect(diff.locator(".add", has_text="version: 2")).to_have_count(1)
    await shot(page, "history-diff")
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.get_by_test_id("rollback").click()
    await page.wait_for_load_state("load")
    await expect(page.get_by_test_id("history-row")).to_have_count(3)
    status, body = await invoke_notes(page)
    assert status == 200 and body["version"] == 1, (status, body)


async def enable_disable(page):
    await page.get_by_test_id("enable-toggle").click()
    await expect(page.get_by_test_id("enable-toggle")).to_have_text("Enable")
    assert (await invoke_notes(page))[0] == 404
    await page.get_by_test_id("enable-toggle").click()
    await expect(page.get_by_test_id("enable-toggle")).to_have_text("Disable")
    assert (await invoke_notes(page))[0] == 200


async def activity(page):
    """The server's last hour, from the invocation records of the runs above (written off the hot path)."""
    for _ in range(20):
        await page.goto(BASE + "/ui/servers/notes")
        calls = int(await page.get_by_test_id("server-stats").locator("dd").first.inner_text())
        if calls > 0:
            break
        await asyncio.sleep(0.25)
    assert calls >= 5, calls
    await expect(page.get_by_test_id("server-chart").locator("rect")).not_to_have_count(0)
    await shot(page, "activity")
    await page.goto(BASE + "/ui?q=notes")
    await expect(page.get_by_test_id("server-calls")).to_contain_text(re.compile(r"^[1-9]\d* calls"))
    await shot(page, "servers-last-hour")
    await page.goto(BASE + "/ui/invocations?server=notes&via=cli")
    await expect(page.get_by_test_id("invocation-row")).to_have_count(0)
    await page.goto(BASE + "/ui/invocations?server=notes")
    await expect(page.get_by_test_id("invocation-row").first).to_be_visible()
    await page.screenshot(path=f"{SHOTS}/invocations.png")


async def secrets(page):
    await page.goto(BASE + "/ui/secrets")
    row = page.locator('[data-testid=secret-row][data-name=NOTES_TOKEN]')
    await expect(row).to_contain_text("missing")
    await expect(row).to_contain_text("notes")
    await page.get_by_test_id("secret-name").fill("NOTES_TOKEN")
    await page.get_by_test_id("secret-value").fill(SECRET_VALUE)
    await page.get_by_test_id("secret-save").click()
    await expect(row).to_contain_text("set")
    await expect(page.get_by_test_id("secret-value")).to_have_value("")
    assert SECRET_VALUE not in await page.content()
    await page.screenshot(path=f"{SHOTS}/secrets.png")
    await page.goto(BASE + "/ui/servers/notes")
    await expect(page.get_by_test_id("declared-secret")).to_contain_text("set")
    assert SECRET_VALUE not in await page.content()
    await page.goto(BASE + "/ui/secrets")
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await row.get_by_test_id("secret-delete").click()
    await expect(row).to_contain_text("missing")


async def refusals(page, report):
    """A forged request: the session cookie rides along (same browser), the CSRF token or Origin does not."""
    form = {"name": "FORGED", "value": "x"}
    own = {"Origin": BASE}
    no_token = await page.request.post(BASE + "/ui/secrets", form=form, headers=own)
    csrf = await page.locator("body").get_attribute("hx-headers")
    token = json.loads(csrf)["X-CSRF-Token"]
    foreign = await page.request.post(BASE + "/ui/secrets", form=form,
                                      headers={"Origin": "http://evil.example", "X-CSRF-Token": token})
    wrong = await page.request.post(BASE + "/ui/secrets", form=form, headers={**own, "X-CSRF-Token": "0" * 64})
    report["refusals"] = {"no_csrf": no_token.status, "foreign_origin": foreign.status, "wrong_csrf": wrong.status}
    assert (no_token.status, foreign.status, wrong.status) == (403, 403, 403), report["refusals"]
    assert (await no_token.json())["error"]["type"] == "forbidden"
    await page.reload()
    await expect(page.locator('[data-testid=secret-row][data-name=FORGED]')).to_have_count(0)


async def import_openapi(page, report):
    """The Petstore example, read, narrowed by filter and tag, previewed, applied and called; then a
    re-import that shows what it would change. A Swagger 2.0 document is refused where the user looks."""
    await page.goto(BASE + "/ui")
    await page.get_by_test_id("import-openapi").click()
    await expect(page).to_have_url(BASE + "/ui/import")
    await page.get_by_test_id("import-name").fill("pets")
    await page.get_by_test_id("import-document").fill("swagger: '2.0'\ninfo: {title: Old, version: '1'}\n")
    await page.get_by_test_id("import-read").click()
    await expect(page.get_by_test_id("error")).to_contain_text("Swagger 2.0")
    await page.get_by_test_id("import-document").fill("")
    await page.get_by_test_id("import-file").set_input_files(PETSTORE)
    await page.get_by_test_id("import-read").click()
    operations = page.get_by_test_id("import-operation")
    await expect(operations).to_have_count(4)
    await page.get_by_test_id("import-filter").fill("pet/")
    await expect(page.locator("[data-testid=import-operation]:visible")).to_have_count(0)
    await page.get_by_test_id("import-filter").fill("petid")
    await expect(page.locator("[data-testid=import-operation]:visible")).to_have_count(2)
    await page.get_by_test_id("import-filter").fill("")
    await page.locator("input[data-tag=admin]").uncheck()
    await expect(page.locator("[data-name=delete_pet] input[name=operation]")).not_to_be_checked()
    await expect(page.get_by_test_id("import-count")).to_have_text("3 of 4 selected · 4 shown")
    await shot(page, "import")
    await page.get_by_test_id("import-preview").click()
    plan = page.get_by_test_id("import-plan")
    await expect(plan).to_contain_text("3 operations")
    await expect(plan).to_contain_text("A new server")
    await expect(page.get_by_test_id("import-script")).to_contain_text('"create_pet": #{')
    await expect(page.get_by_test_id("import-script")).not_to_contain_text('"delete_pet"')
    await shot(page, "import-preview")
    assert (await page.request.get(BASE + "/pets/pets")).status == 404, "nothing is stored before apply"
    await page.get_by_test_id("import-apply").click()
    await expect(page).to_have_url(BASE + "/ui/servers/pets")
    operation = page.locator("[data-operation=list_pets]")
    await operation.locator("summary").click()
    await operation.locator("input[name=limit]").fill("2")
    await operation.get_by_test_id("operation-submit").click()
    await expect(page.get_by_test_id("try-status")).to_have_text("200")
    await expect(page.get_by_test_id("try-output")).to_contain_text('"ok": true')
    # Again, with get_pet left out and the admin tag back in: the preview names what changes.
    await page.goto(BASE + "/ui/import")
    await page.get_by_test_id("import-name").fill("pets")
    await page.get_by_test_id("import-file").set_input_files(PETSTORE)
    await page.get_by_test_id("import-read").click()
    await page.locator("[data-name=get_pet] input[name=operation]").uncheck()
    await expect(page.locator("input[data-tag=pets]")).not_to_be_checked()
    await page.get_by_test_id("import-preview").click()
    diff = page.get_by_test_id("import-diff")
    await expect(diff.locator(".add")).to_have_text(["+ delete_pet"])
    await expect(diff.locator(".del")).to_have_text(["- get_pet"])
    await shot(page, "import-diff")
    await page.get_by_test_id("import-apply").click()
    await expect(page).to_have_url(BASE + "/ui/servers/pets")
    await expect(page.get_by_test_id("history-row")).to_have_count(2)
    report["import"] = {"operations_applied": 3, "reimport_diff": ["+ delete_pet", "- get_pet"]}


async def boot(page, exported):
    await page.goto(BASE + "/ui/boot")
    async with page.expect_download() as download:
        await page.get_by_test_id("boot-export").click()
    await (await download.value).save_as(exported)
    # The image holds `notes`; deleting it first makes the import bring it back, which the diff shows.
    csrf = json.loads(await page.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]
    await page.get_by_test_id("boot-import").set_input_files(exported)
    await page.get_by_role("button", name="Show changes").click()
    await expect(page.get_by_test_id("boot-diff")).to_contain_text("nothing would change")
    answer = await page.request.post(BASE + "/ui/new", form={"name": "scratch", "template": "adhoc"},
                                     headers={"Origin": BASE, "X-CSRF-Token": csrf})
    assert answer.ok, answer.status
    await page.get_by_role("button", name="Show changes").click()
    await expect(page.get_by_test_id("boot-diff")).to_contain_text("- server scratch")
    await shot(page, "boot")
    await page.get_by_test_id("boot-apply").click()
    await expect(page.get_by_test_id("boot-applied")).to_be_visible()
    assert (await page.request.get(BASE + "/scratch")).status == 404


async def new_server(page):
    await page.goto(BASE + "/ui")
    await page.get_by_test_id("new-server").click()
    await page.get_by_test_id("new-name").fill("weather")
    await page.get_by_test_id("new-template").select_option("api")
    await shot(page, "new")
    await page.get_by_test_id("new-create").click()
    await expect(page).to_have_url(BASE + "/ui/servers/weather")
    await expect(page.get_by_test_id("editor")).to_contain_text("api::call(global::META")


async def oauth(page):
    await page.goto(BASE + "/ui/servers/linked")
    await expect(page.get_by_test_id("oauth-status")).to_contain_text("not connected")
    await page.get_by_test_id("oauth-variable").fill("evil.example/x")
    await page.get_by_test_id("oauth-connect").click()
    await expect(page.get_by_test_id("error")).to_contain_text("not a valid LINKED_TENANT")
    await page.get_by_test_id("oauth-variable").fill("acme-eu")
    await page.get_by_test_id("oauth-connect").click()
    await expect(page.get_by_role("heading", name="Connected")).to_be_visible()
    await page.get_by_test_id("back-to-console").click()
    await expect(page).to_have_url(BASE + "/ui/servers/linked")
    await expect(page.get_by_test_id("oauth-status")).to_contain_text("connected")
    await expect(page.get_by_test_id("oauth-status")).not_to_contain_text("not connected")
    await expect(page.get_by_test_id("oauth-variable")).to_have_value("acme-eu")
    await shot(page, "oauth")
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.get_by_test_id("oauth-disconnect").click()
    await expect(page.get_by_test_id("oauth-status")).to_contain_text("not connected")


async def webhooks(page):
    await page.goto(BASE + "/ui/servers/hooks")
    await expect(page.get_by_test_id("webhook-endpoint")).to_have_text(BASE + "/webhooks/hooks")
    event = page.get_by_test_id("webhook-event")
    await expect(event).to_have_count(1)
    await expect(event).to_contain_text("msg_console_1")
    runs = event.locator("td").nth(3)
    before = int(await runs.inner_text())
    await event.get_by_test_id("webhook-replay").click()
    await expect(runs).to_have_text(str(before + 1))
    await shot(page, "webhooks")


async def logout(page):
    await page.get_by_test_id("logout").click()
    await expect(page).to_have_url(BASE + "/ui/login")
    await page.goto(BASE + "/ui/secrets")
    await expect(page).to_have_url(BASE + "/ui/login")


async def main():
    report, watch = {}, Watch()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
        await context.route("**/*", watch.route)
        page = await context.new_page()
        page.on("console", watch.console)
        page.on("pageerror", lambda error: watch.errors.append(str(error)))
        page.on("response", lambda response: asyncio.ensure_future(watch.response(response)))
        await login(page, report)
        if PAINT_ONLY:
            await first_paint(page, report, times=15)
            await browser.close()
            print(json.dumps(report))
            return
        await first_paint(page, report)
        await search(page)
        await try_it(page)
        await edit(page, report)
        await diff_and_rollback(page)
        await enable_disable(page)
        await activity(page)
        await secrets(page)
        await refusals(page, report)
        await new_server(page)
        await oauth(page)
        await webhooks(page)
        await import_openapi(page, report)
        await boot(page, tempfile.mkdtemp() + "/exported.boot.json")
        await logout(page)
        await asyncio.sleep(0.2)
        await browser.close()
    leaked = [i for i, body in enumerate(watch.bodies) if SECRET_VALUE in body]
    report.update(foreign_requests=watch.foreign, console_errors=watch.errors, responses=len(watch.bodies),
                  responses_with_secret=len(leaked))
    print(json.dumps(report))
    assert not watch.foreign and not watch.errors and not leaked, report


asyncio.run(main())
