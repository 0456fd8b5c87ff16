// The registers' service worker, served from /service-worker.js so that its scope is the
// whole site. It keeps only pages and files that hold no personal data: the two pages that
// are filled in on the phone when there is no connection, and the styles and scripts. The
// registers themselves are in IndexedDB (static/js/offline/store.js).

const CACHE = 'aop-registers-v2'
const SESSIONS_PAGE = '/offline/sessions'
const REGISTER_PAGE = '/offline/register'
const FILES = [
  '/static/nhsuk/nhsuk-frontend.min.css',
  '/static/nhsuk/nhsuk-frontend.min.js',
  '/static/nhsuk/assets/images/favicon.ico',
  '/static/nhsuk/assets/images/favicon.svg',
  '/static/nhsuk/assets/images/nhsuk-icon-180.png',
  '/static/nhsuk/assets/images/nhsuk-icon-192.png',
  '/static/css/app.css',
  '/static/js/app.js',
  '/static/js/offline/app.js',
  '/static/js/offline/store.js',
  '/static/js/offline/views.js'
]
// With a connection this slow, the phone's copy is shown instead.
const NETWORK_WAIT_MS = 4000

async function fetched (url) {
  const response = await fetch(url, { credentials: 'same-origin', cache: 'no-store' })
  // A page answered by the sign-in page (redirected) is not the page.
  if (!response.ok || response.redirected) throw new Error(`${url} could not be kept`)
  return [url, response]
}

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    // Everything first, then the cache: an install that fails (signed out) leaves nothing.
    const responses = await Promise.all([SESSIONS_PAGE, REGISTER_PAGE, ...FILES].map(fetched))
    const cache = await caches.open(CACHE)
    await Promise.all(responses.map(([url, response]) => cache.put(url, response)))
    await self.skipWaiting()
  })())
})

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name !== CACHE) await caches.delete(name)
    }
    await self.clients.claim()
  })())
})

function pageFor (path) {
  if (path === '/sessions/') return SESSIONS_PAGE
  if (/^\/sessions\/\d+\/register$/.test(path)) return REGISTER_PAGE
  return null
}

function fromNetwork (request) {
  if (!navigator.onLine) return Promise.reject(new Error('offline'))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('slow')), NETWORK_WAIT_MS)
    fetch(request).then((response) => { clearTimeout(timer); resolve(response) }, (error) => { clearTimeout(timer); reject(error) })
  })
}

// A register saved on the server's page: if the connection drops before the server answers, or
// the server fails, back to the register with ?unsent, where the page keeps it to send later.
function registerSaved (request, url) {
  const unsent = () => Response.redirect(new URL(`${url.pathname}?unsent=1`, self.location.origin).href, 303)
  return fetch(request).then((response) => (response.status >= 500 ? unsent() : response), unsent)
}

self.addEventListener('fetch', (event) => {
  const request = event.request
  const url = new URL(request.url)
  if (url.origin !== self.location.origin) return
  if (request.method === 'POST' && request.mode === 'navigate' && pageFor(url.pathname) === REGISTER_PAGE) {
    event.respondWith(registerSaved(request, url))
    return
  }
  if (request.method !== 'GET') return
  if (request.mode === 'navigate') {
    const page = pageFor(url.pathname)
    if (!page) return
    event.respondWith(fromNetwork(request).catch(async () => (await caches.match(page)) || Response.error()))
  } else if (url.pathname.startsWith('/static/')) {
    // Fresh from the server when it answers; the kept copy otherwise.
    event.respondWith(fromNetwork(request).then(async (response) => {
      // Only into a cache that is still there: after signing out it is gone, and stays gone.
      if (response.ok && await caches.has(CACHE)) {
        const cache = await caches.open(CACHE)
        await cache.put(request, response.clone())
      }
      return response
    }).catch(async () => (await caches.match(request, { ignoreSearch: true })) || Response.error()))
  }
})
