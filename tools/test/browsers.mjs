// Headless browsers for the tools (benchmark, kernel probe), each on a fresh profile dir: Chromium through
// playwright-core, Firefox through puppeteer-core over WebDriver BiDi, WebKit (WebKitGTK's MiniBrowser on
// Xvfb) over classic WebDriver (tools/test/webkit.mjs; Safari's settings; it keeps its data in memory, the dir only
// tags its command line). All return {newPage(), close()}; the Chromium one is Playwright's persistent
// context (newCDPSession, pages() too). WebKit pages must use http://localhost (not 127.0.0.1).
export const CHROME_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];
const FIREFOX_PREFS = {
  'network.captive-portal-service.enabled': false, 'network.connectivity-service.enabled': false,
  'app.update.enabled': false, 'browser.safebrowsing.malware.enabled': false, 'browser.safebrowsing.phishing.enabled': false,
};

export async function launchBrowser(kind, dir, { chromium = '/usr/bin/chromium', firefox = '/usr/bin/firefox-esr' } = {}) {
  if (kind === 'webkit' || kind === 'webkitgtk') { // webkitgtk: WebKitGTK's defaults (no SharedArrayBuffer, no OPFS)
    const { launchWebKit } = await import('./webkit.mjs');
    return launchWebKit({ safari: kind === 'webkit', tag: dir });
  }
  if (kind !== 'firefox') {
    const { chromium: cr } = await import('playwright-core');
    return cr.launchPersistentContext(dir, { executablePath: chromium, headless: true, args: CHROME_ARGS });
  }
  const puppeteer = (await import('puppeteer-core')).default;
  const browser = await puppeteer.launch({
    browser: 'firefox', protocol: 'webDriverBiDi', executablePath: firefox, headless: true, userDataDir: dir,
    extraPrefsFirefox: FIREFOX_PREFS,
  });
  return { newPage: () => browser.newPage(), close: () => browser.close() };
}
