// Copies the pinned NHS.UK frontend build into the Flask static folder.
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'

const from = 'node_modules/nhsuk-frontend/dist/nhsuk'
const to = 'referrals/static/nhsuk'
rmSync(to, { recursive: true, force: true })
mkdirSync(to, { recursive: true })

// The stylesheet's @font-face rules load Frutiger from assets.nhs.uk. The service sends no
// request to a third party (and its Content-Security-Policy allows fonts from itself only), so
// they are removed and pages use the design system's fallback fonts.
// Its icons (the search box's clear button, sortable table arrows) are addressed from the site
// root, /assets/images/…; here they are served next to the stylesheet, so the paths are made
// relative to it.
const css = readFileSync(`${from}/nhsuk-frontend.min.css`, 'utf8')
  .replace(/@font-face\{[^}]*\}/g, '')
  .replace(/url\(\/assets\//g, 'url(assets/')
  .replace(/\/\*# sourceMappingURL=[^*]*\*\//, '')
writeFileSync(`${to}/nhsuk-frontend.min.css`, css)

for (const file of ['nhsuk-frontend.min.js', 'nhsuk-frontend.min.js.map']) {
  cpSync(`${from}/${file}`, `${to}/${file}`)
}
cpSync(`${from}/assets`, `${to}/assets`, { recursive: true })
console.log(`NHS.UK frontend copied to ${to}`)
