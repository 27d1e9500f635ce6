// Opens each URL given in headless Debian Chromium (through playwright-core,
// which downloads no browser), waits for the page to set `window.done`, and
// prints `{url: window.results}` as JSON.
//
//   PLAYWRIGHT_CORE=.tools/browser/node_modules/playwright-core node drive.cjs URL...
//
// Host names *.test resolve to 127.0.0.1 inside the browser, so pages can be
// served from origins that are not loopback origins.
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--host-resolver-rules=MAP *.test 127.0.0.1",
    ],
  });
  const out = {};
  try {
    for (const url of process.argv.slice(2)) {
      const page = await browser.newPage();
      const console_lines = [];
      page.on("console", (m) => console_lines.push(m.text()));
      await page.goto(url);
      await page.waitForFunction(() => window.done === true, null, { timeout: 20000 });
      out[url] = await page.evaluate(() => window.results);
      out[url].console = console_lines;
      await page.close();
    }
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
