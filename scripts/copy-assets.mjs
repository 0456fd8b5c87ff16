// Copies the pinned NHS.UK frontend build into the Flask static folder.
import { cpSync, mkdirSync, rmSync } from 'node:fs'

const from = 'node_modules/nhsuk-frontend/dist/nhsuk'
const to = 'referrals/static/nhsuk'
rmSync(to, { recursive: true, force: true })
mkdirSync(to, { recursive: true })
for (const file of ['nhsuk-frontend.min.css', 'nhsuk-frontend.min.js', 'nhsuk-frontend.min.js.map']) {
  cpSync(`${from}/${file}`, `${to}/${file}`)
}
cpSync(`${from}/assets`, `${to}/assets`, { recursive: true })
console.log(`NHS.UK frontend copied to ${to}`)
