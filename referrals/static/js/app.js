// Progressive enhancement only: every page works without JavaScript.
import { initAll } from '../nhsuk/nhsuk-frontend.min.js'

initAll()

// Artists' pages link the web app manifest: their registers can be taken without a connection.
if (document.querySelector('[data-offline-registers]')) {
  import('./offline/app.js').then((offline) => offline.start())
} else if (navigator.serviceWorker) {
  // Signed out, or the sign-in ended: the phone lets go of the registers it kept.
  navigator.serviceWorker.getRegistrations().then((registrations) => {
    if (registrations.length) import('./offline/app.js').then((offline) => offline.stop())
  })
}
