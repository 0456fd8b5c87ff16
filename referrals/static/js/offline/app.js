// The installable register for artists: keeps the next 7 days of registers on the phone when
// the app is opened online, lets a register be taken with no connection, and sends what is
// waiting when the connection returns or the app is next opened, each register once (an
// Idempotency-Key per register taken). A register changed on the server meanwhile is never
// overwritten without the artist choosing; one refused is kept for an admin to enter.

import * as store from './store.js'
import { h, localDay, offlineNotice, renderReady, renderRegister, renderSessions, renderWaiting } from './views.js'

const KEPT_URL = '/sessions/offline'
// A send the server could not take (it failed, or the connection went half-way, or had not
// quite come back) is tried again, less often each time.
const RETRY_FIRST_MS = 2000
const RETRY_MAX_MS = 60000
let retryDelay = RETRY_FIRST_MS
let syncing = null
let retry = null

async function retryIfWaiting () {
  if (!(await store.waiting()).some((item) => item.state === 'waiting')) {
    retryDelay = RETRY_FIRST_MS
  } else if (!retry) {
    retry = setTimeout(() => { retry = null; sync() }, retryDelay)
    retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS)
  }
}

function area (id) {
  return document.getElementById(id)
}

async function showWaiting () {
  const container = area('offline-waiting')
  if (!container) return
  renderWaiting(container, await store.waiting(), {
    sendMine: async (item) => {
      await store.putWaiting({ ...item, state: 'waiting', based_on: item.server_version, message: '' })
      await sync()
    },
    keepSaved: async (item) => {
      if (!item.questionnaires.length) {
        await store.removeWaiting(item.key)
        announce(`Your register for ${item.title}, ${item.date_text} was removed from this phone; the saved register stays.`)
        await showWaiting()
        return
      }
      // The questionnaires were answered at the session whichever register is kept: they go.
      await store.putWaiting({ ...item, state: 'waiting', keep_saved: true, based_on: item.server_version, message: '' })
      await sync()
    },
    discard: async (item) => {
      await store.removeWaiting(item.key)
      await showWaiting()
    }
  })
}

function announce (text) {
  const region = area('offline-announcements')
  if (region) region.replaceChildren(h('div', { class: 'nhsuk-inset-text app-flash app-flash--success' }, h('p', { text })))
}

function showConnection () {
  const notice = area('offline-notice')
  if (notice) notice.replaceChildren(navigator.onLine ? '' : offlineNotice())
}

// Keeping registers ---------------------------------------------------------------------------

async function refreshKept () {
  let response
  try {
    response = await fetch(KEPT_URL, { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
  } catch {
    return null // no connection: keep what the phone has
  }
  const json = (response.headers.get('Content-Type') || '').includes('application/json')
  if (response.redirected || response.status === 401 || response.status === 403) {
    // Signed out (the sign-in ended) or no longer an artist: let the registers go.
    await store.forgetKeptRegisters()
    return null
  }
  if (!response.ok || !json) return null
  const bundle = await response.json()
  await store.keepRegisters(bundle) // replaced whole: sessions no longer the artist's go
  return bundle
}

// Sending -------------------------------------------------------------------------------------

async function send (item, csrfToken) {
  let response
  try {
    response = await fetch(item.send_url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/json',
        'X-CSRFToken': csrfToken,
        'Idempotency-Key': item.key
      },
      body: JSON.stringify(item.keep_saved
        ? { based_on: item.based_on, questionnaires: item.questionnaires }
        : { based_on: item.based_on, entries: item.entries, questionnaires: item.questionnaires })
    })
  } catch {
    return // the connection went again: it stays waiting
  }
  const json = (response.headers.get('Content-Type') || '').includes('application/json')
  const answer = json ? await response.json() : {}
  if (response.ok && answer.status === 'saved') {
    await store.removeWaiting(item.key)
    announce(answer.message)
  } else if (answer.status === 'changed') {
    await store.putWaiting({ ...item, state: 'changed', message: answer.message, differences: answer.differences, server_version: answer.version, saved_at: answer.saved_at })
  } else if (answer.status === 'refused' || answer.status === 'invalid') {
    const details = Object.values(answer.errors || {}).flat()
    await store.putWaiting({ ...item, state: 'refused', message: [answer.message, ...details].join('. ') })
  } else if (response.status === 404) {
    await store.putWaiting({ ...item, state: 'refused', message: 'This session is no longer one of your sessions, so the register cannot be sent from this phone. Ask an admin to enter it.' })
  } else if (response.redirected) {
    await store.putWaiting({ ...item, message: 'Sign in again to send it.' })
  }
}

async function sendWaiting () {
  if (!navigator.onLine) return
  const bundle = await refreshKept()
  if (bundle) {
    for (const item of await store.waiting()) {
      if (item.state === 'waiting') await send(item, bundle.csrf_token)
    }
  }
  await retryIfWaiting()
  if (!bundle) return
  const ready = area('offline-ready')
  if (ready) renderReady(ready, bundle)
}

export function sync () {
  // One at a time, across this phone's open tabs too: a register is never sent twice at once.
  if (!syncing) {
    const run = () => sendWaiting().finally(showWaiting)
    syncing = (navigator.locks ? navigator.locks.request('aop-registers-sync', run) : run())
      .catch(() => {})
      .finally(() => { syncing = null })
  }
  return syncing
}

// Taking a register with no connection --------------------------------------------------------

// A register taken on this phone, not yet sent: waiting, or saved on the server's page as the
// connection went (a draft). Questionnaires kept apart from a register already settled are not.
function takenHere (item, sessionId) {
  return item.session_id === sessionId && ['waiting', 'draft'].includes(item.state) && !item.keep_saved
}

async function takeRegister (session, register, lead = '') {
  const waiting = await store.waiting()
  const earlier = waiting.find((item) => takenHere(item, session.id))
  const names = Object.fromEntries(session.people.map((p) => [p.enrolment_id, p.name]))
  const item = {
    key: crypto.randomUUID(),
    session_id: session.id,
    send_url: session.send_url,
    title: session.course_title,
    date_text: session.date_text,
    based_on: earlier ? earlier.based_on : session.version,
    entries: register.entries,
    questionnaires: register.questionnaires,
    names,
    state: 'waiting',
    message: '',
    taken_at: Date.now()
  }
  if (earlier) await store.removeWaiting(earlier.key)
  await store.putWaiting(item)
  const attended = register.entries.filter((e) => e.status === 'attended').length
  announce(`${lead}Register saved on this phone: ${attended} of ${register.entries.length} attended. It will be sent when the connection returns.`)
  await showWaiting()
  if (navigator.onLine) await sync()
  window.scrollTo(0, 0)
}

async function showShell (shell) {
  const root = area('offline-content')
  const today = localDay()
  const [bundle, waiting] = await Promise.all([store.keptRegisters(), store.waiting()])
  if (shell.dataset.offlineView === 'sessions') {
    renderSessions(root, bundle, today)
    return
  }
  const match = location.pathname.match(/^\/sessions\/(\d+)\/register$/)
  const session = bundle && match && bundle.sessions.find((s) => s.id === Number(match[1]))
  const draft = match && waiting.find((item) => item.state === 'draft' && item.session_id === Number(match[1]))
  if (!session && draft) { // saved as the connection went, for a session the phone does not keep
    await keepDraft(draft)
    root.replaceChildren(h('span', { class: 'nhsuk-caption-l', text: draft.title }),
      h('h1', { class: 'nhsuk-heading-l', text: `Register, ${draft.date_text}` }),
      h('p', {}, 'Your register is kept on this phone and listed above until it is sent. ',
        h('a', { href: '/sessions/', text: 'My sessions' })))
    return
  }
  if (!session) {
    root.replaceChildren(h('h1', { text: 'This register is not on this phone' }),
      h('p', {}, 'Only the registers of your next 7 days of sessions are kept on this phone, from the last time you opened the app with a connection. ',
        h('a', { href: '/sessions/', text: 'My sessions' })))
    return
  }
  document.title = `Register: ${session.course_title}, ${session.date_text} (offline) – ${document.title.split(' – ').pop()}`
  const taken = waiting.find((item) => takenHere(item, session.id))
  const unsent = taken && taken.state === 'draft'
  renderRegister(root, session, {
    today,
    labels: JSON.parse(shell.dataset.itemLabels || '[]'),
    taken,
    onSave: (register) => takeRegister(session, register, unsent ? DROPPED : '')
  })
  // Saved on the server's page as the connection went: kept here now, or its gaps shown.
  if (unsent) root.querySelector('form').requestSubmit()
}

// A register saved on the page the server sent ---------------------------------------------
// Kept on the phone until the server answers: if the connection drops first (or the server
// fails), the service worker brings the artist back to the register with ?unsent, and the
// register is sent later like one taken offline.

const DROPPED = 'The connection dropped before the register reached the server. '

function readServerRegister (form, about) {
  const data = new FormData(form)
  const entries = []
  const names = {}
  const mood = (name) => (data.get(name) ? Number(data.get(name)) : null)
  for (const person of form.querySelectorAll('.app-register__person')) {
    const status = person.querySelector('input[type=radio][name^="status-"]')
    const eid = Number(status.name.slice('status-'.length))
    names[eid] = person.querySelector('legend').textContent.trim()
    if (!data.get(`status-${eid}`)) continue
    entries.push({
      enrolment_id: eid,
      status: data.get(`status-${eid}`),
      mood_before: mood(`mood_before-${eid}`),
      mood_after: mood(`mood_after-${eid}`),
      note: data.get(`note-${eid}`) || ''
    })
  }
  return {
    key: crypto.randomUUID(),
    session_id: about.session_id,
    send_url: about.send_url,
    title: about.title,
    date_text: about.date_text,
    based_on: about.version,
    entries,
    questionnaires: [],
    names,
    state: 'draft',
    message: '',
    taken_at: Date.now()
  }
}

function keepWhileSaving (form) {
  const about = JSON.parse(form.dataset.register)
  form.addEventListener('submit', async (event) => {
    if (event.defaultPrevented) return
    event.preventDefault()
    const draft = readServerRegister(form, about)
    for (const item of await store.waiting()) {
      if (item.state === 'draft' && item.session_id === draft.session_id) await store.removeWaiting(item.key)
    }
    await store.putWaiting(draft)
    form.submit()
  })
}

// Drafts whose page the server answered are done with; the one it did not answer is waiting.
async function settleDrafts (shell) {
  const unsent = new URLSearchParams(location.search).has('unsent')
  if (unsent) history.replaceState(null, '', location.pathname)
  const match = location.pathname.match(/^\/sessions\/(\d+)\/register$/)
  const sessionId = unsent && match ? Number(match[1]) : null
  for (const item of await store.waiting()) {
    if (item.state !== 'draft') continue
    if (item.session_id !== sessionId) {
      await store.removeWaiting(item.key)
    } else if (!shell) { // the server's page, back after it failed: sent when it can be
      await keepDraft(item)
    } // on the phone's own page the draft is taken up by showShell
  }
}

async function keepDraft (draft) {
  await store.putWaiting({ ...draft, state: 'waiting' })
  const attended = draft.entries.filter((e) => e.status === 'attended').length
  announce(`${DROPPED}Register saved on this phone: ${attended} of ${draft.entries.length} attended. It will be sent when it can be.`)
}

function registerWorker () {
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('/service-worker.js', { scope: '/' }).catch(() => {})
  }
}

export async function start () {
  registerWorker()
  showConnection()
  window.addEventListener('online', () => { showConnection(); sync() })
  window.addEventListener('offline', showConnection)
  const shell = document.querySelector('[data-offline-view]')
  await settleDrafts(shell)
  const serverRegister = document.querySelector('form[data-register]')
  if (serverRegister) keepWhileSaving(serverRegister)
  if (shell) await showShell(shell)
  await showWaiting()
  if (navigator.onLine) {
    if ('serviceWorker' in navigator) await navigator.serviceWorker.ready
    await sync()
  }
}

// Off an artist's pages (the sign-in page after signing out or after the sign-in ended): the
// kept registers, the kept pages and the service worker go. Registers still waiting to be sent
// stay until they are sent after signing in again (signing out clears them too).
export async function stop () {
  const databases = await indexedDB.databases()
  if (databases.some((database) => database.name === store.NAME)) await store.forgetKeptRegisters()
  for (const name of await caches.keys()) await caches.delete(name)
  for (const registration of await navigator.serviceWorker.getRegistrations()) {
    await registration.unregister()
  }
}
