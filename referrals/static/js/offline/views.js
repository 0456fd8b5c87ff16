// The register and "My sessions" drawn on the phone from the registers it keeps, in the same
// NHS.UK markup as the pages the server sends, and the registers waiting to be sent. Text from
// the server is only ever set as text, never as HTML.

const STATUSES = [['attended', 'Attended'], ['apologies', 'Apologies'], ['no_show', 'No show']]
const STATUS_LABELS = Object.fromEntries(STATUSES)
const ANSWERS = ['1', '2', '3', '4', '5']

export function h (tag, attrs = {}, ...children) {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue
    if (name === 'text') element.textContent = value
    else if (name.startsWith('on')) element.addEventListener(name.slice(2), value)
    else element.setAttribute(name, value === true ? '' : value)
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) element.append(child)
  }
  return element
}

const hidden = (text) => h('span', { class: 'nhsuk-u-visually-hidden', text })

export function localDay (date = new Date()) {
  const pad = (n) => String(n).padStart(2, '0')
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`
}

export function describeMark (entry) {
  if (!entry || !entry.status) return 'Not marked'
  const parts = [STATUS_LABELS[entry.status]]
  if (entry.mood_before !== null || entry.mood_after !== null) {
    parts.push(`mood ${entry.mood_before ?? '–'} to ${entry.mood_after ?? '–'}`)
  }
  if (entry.note && entry.note.trim()) parts.push(`note: ${entry.note.trim()}`)
  return parts.join(', ')
}

function warning (title, ...body) {
  return h('div', { class: 'nhsuk-warning-callout' },
    h('h2', { class: 'nhsuk-warning-callout__label' },
      h('span', { role: 'text' }, hidden('Important: '), title)),
    ...body)
}

// The offline notice -------------------------------------------------------------------------

export function offlineNotice () {
  return warning('You are offline',
    h('p', { text: 'Registers you save are kept on this phone and will be sent when the connection returns.' }))
}

// Waiting to be sent ---------------------------------------------------------------------------

function count (n, one, many) {
  return n === 1 ? `1 ${one}` : `${n} ${many}`
}

function describeQuestionnaire (item, questionnaire) {
  return `${item.names[questionnaire.enrolment_id]}: ${questionnaire.timepoint.replace('_', ' ')} wellbeing questionnaire, answers ${questionnaire.items.join(', ')}`
}

function waitingItem (item, actions) {
  const what = `Register for ${item.title}, ${item.date_text}`
  if (item.state === 'changed') {
    return warning(`${what}: changed by someone else`,
      h('p', { text: item.message }),
      item.saved_at ? h('p', { text: `The saved register was saved ${item.saved_at}.` }) : null,
      h('table', { class: 'nhsuk-table' },
        h('caption', { class: 'nhsuk-table__caption nhsuk-table__caption--s', text: 'What differs' }),
        h('thead', { class: 'nhsuk-table__head' },
          h('tr', { class: 'nhsuk-table__row' },
            ...['Person', 'Your register', 'Saved register'].map((text) =>
              h('th', { class: 'nhsuk-table__header', scope: 'col', text })))),
        h('tbody', { class: 'nhsuk-table__body' },
          ...item.differences.map((row) => h('tr', { class: 'nhsuk-table__row' },
            h('td', { class: 'nhsuk-table__cell', text: row.name }),
            h('td', { class: 'nhsuk-table__cell', text: row.yours }),
            h('td', { class: 'nhsuk-table__cell', text: row.saved }))))),
      h('div', { class: 'nhsuk-button-group' },
        h('button', { type: 'button', class: 'nhsuk-button', onclick: () => actions.sendMine(item) },
          'Send my register instead', hidden(`: ${what}`)),
        h('button', { type: 'button', class: 'nhsuk-button nhsuk-button--secondary', onclick: () => actions.keepSaved(item) },
          'Keep the saved register', hidden(`: ${what}`))))
  }
  if (item.state === 'refused') {
    return warning(`${what}: not accepted`,
      h('p', { text: item.message }),
      h('p', { text: 'It is kept on this phone so that an admin can enter it:' }),
      h('ul', { class: 'nhsuk-list nhsuk-list--bullet' },
        ...(item.keep_saved ? [] : item.entries).map((entry) => h('li', { text: `${item.names[entry.enrolment_id]}: ${describeMark(entry)}` })),
        ...item.questionnaires.map((questionnaire) => h('li', { text: describeQuestionnaire(item, questionnaire) }))),
      h('button', { type: 'button', class: 'nhsuk-button nhsuk-button--secondary', onclick: () => actions.discard(item) },
        'Remove from this phone', hidden(`: ${what}`)))
  }
  const described = item.keep_saved
    ? `Questionnaires for ${item.title}, ${item.date_text} (${count(item.questionnaires.length, 'questionnaire', 'questionnaires')}; the saved register stays)`
    : `${what} (${count(item.entries.length, 'person', 'people')})`
  return h('li', {}, described,
    item.message ? h('span', { class: 'nhsuk-body-s app-secondary-text', text: ` ${item.message}` }) : null)
}

export function renderWaiting (container, all, actions) {
  container.replaceChildren()
  const items = all.filter((item) => item.state !== 'draft') // still on its way to the server
  if (!items.length) return
  const waiting = items.filter((item) => item.state === 'waiting')
  if (waiting.length) {
    container.append(h('div', { class: 'nhsuk-inset-text app-waiting' },
      h('h2', { class: 'nhsuk-heading-s', text: 'Waiting to be sent' }),
      h('ul', { class: 'nhsuk-list' }, ...waiting.map((item) => waitingItem(item, actions)))))
  }
  for (const item of items.filter((item) => item.state !== 'waiting')) {
    container.append(waitingItem(item, actions))
  }
}

export function renderReady (container, bundle) {
  container.replaceChildren(h('p', { class: 'nhsuk-body-s app-secondary-text app-offline-ready' },
    `Ready without a connection: your registers for the next ${bundle.days} days are kept on this phone until you sign out.`))
}

// My sessions ----------------------------------------------------------------------------------

export function renderSessions (root, bundle, today) {
  root.replaceChildren(h('h1', { text: 'My sessions' }))
  if (!bundle) {
    root.append(h('p', { text: 'No registers are kept on this phone. Open My sessions once with a connection to keep the next 7 days of registers here.' }))
    return
  }
  const list = (sessions) => h('ul', { class: 'nhsuk-list app-session-list' }, ...sessions.map((s) => {
    const title = h('span', { class: 'app-session__title', text: s.course_title })
    const meta = h('span', { class: 'app-session__meta', text: `${s.date_text}, ${s.start_time} · ${s.venue} · session ${s.sequence}` })
    return h('li', { class: 'app-session' }, s.date <= today
      ? h('a', { class: 'app-session__link', href: s.register_url }, title, meta)
      : h('span', { class: 'app-session__link' }, title, meta))
  }))
  const todays = bundle.sessions.filter((s) => s.date === today)
  const later = bundle.sessions.filter((s) => s.date > today)
  root.append(h('h2', { class: 'nhsuk-heading-m', text: 'Today' }),
    todays.length ? list(todays) : h('p', { text: 'No sessions today.' }),
    h('h2', { class: 'nhsuk-heading-m', text: `Next ${bundle.days} days` }),
    later.length ? list(later) : h('p', { text: `No sessions in the next ${bundle.days} days.` }),
    h('p', { class: 'nhsuk-body-s', text: 'A register opens on the day of its session.' }))
}

// The register ---------------------------------------------------------------------------------

function radios (name, idBase, choices, checked, inline) {
  return h('div', { class: `nhsuk-radios${inline ? ' nhsuk-radios--inline' : ''}` },
    ...choices.map(([value, label], index) => {
      const id = index === 0 ? idBase : `${idBase}-${value}`
      return h('div', { class: 'nhsuk-radios__item' },
        h('input', { class: 'nhsuk-radios__input', id, name, type: 'radio', value, checked: checked === value }),
        h('label', { class: 'nhsuk-label nhsuk-radios__label', for: id, text: label }))
    }))
}

function moodSelect (key, label, person, value) {
  const id = `${key}-${person.enrolment_id}`
  return h('div', { class: 'nhsuk-form-group' },
    h('label', { class: 'nhsuk-label', for: id }, `${label} `, hidden(`for ${person.name}`), '(0 to 10)'),
    h('select', { class: 'nhsuk-select', id, name: id },
      h('option', { value: '', text: 'Not asked' }),
      ...Array.from({ length: 11 }, (_, m) =>
        h('option', { value: String(m), text: String(m), selected: value !== null && value !== undefined && String(value) === String(m) }))))
}

function questionnaire (person, labels, answers) {
  const eid = person.enrolment_id
  const body = h('div', { class: 'nhsuk-details__text', id: `questionnaire-${eid}` })
  // Its items are drawn when it is first opened: the register itself is drawn sooner.
  const fill = () => {
    if (body.childElementCount) return
    body.append(
      h('p', { text: 'SWEMWBS. Record each answer from 1 (none of the time) to 5 (all of the time), as the person gave it.' }),
      ...labels.map((label, index) => h('div', { class: 'nhsuk-form-group' },
        h('fieldset', { class: 'nhsuk-fieldset' },
          h('legend', { class: 'nhsuk-fieldset__legend nhsuk-fieldset__legend--s', text: label }),
          radios(`item-${eid}-${index + 1}`, `item-${eid}-${index + 1}`, ANSWERS.map((a) => [a, a]),
            answers ? String(answers[index]) : null, true)))))
  }
  if (answers) fill()
  const details = h('details', { class: 'nhsuk-details app-register__questionnaire', open: answers ? true : null, ontoggle: fill },
    h('summary', { class: 'nhsuk-details__summary', onclick: fill },
      h('span', { class: 'nhsuk-details__summary-text' },
        `Record a wellbeing questionnaire: ${person.questionnaire.label.toLowerCase()}`, hidden(` for ${person.name}`))),
    body)
  return details
}

function personFields (person, entry, labels, answers) {
  const eid = person.enrolment_id
  const needs = h('p', { class: 'nhsuk-body-s app-secondary-text', id: `needs-${eid}` },
    person.needs ? `Needs: ${person.needs}` : 'No access needs recorded')
  if (person.phone) needs.append(' · ', h('a', { href: person.phone_href, text: person.phone_text }))
  return h('fieldset', { class: 'nhsuk-fieldset app-register__person', 'aria-describedby': `needs-${eid}`, 'data-enrolment': String(eid) },
    h('legend', { class: 'nhsuk-fieldset__legend nhsuk-fieldset__legend--m', text: person.name }),
    needs,
    h('div', { class: 'app-register__status', id: `status-${eid}-options` },
      radios(`status-${eid}`, `status-${eid}`, STATUSES, entry ? entry.status : null, true)),
    h('div', { class: 'app-register__moods' },
      moodSelect('mood_before', 'Mood before', person, entry ? entry.mood_before : null),
      moodSelect('mood_after', 'Mood after', person, entry ? entry.mood_after : null)),
    h('div', { class: 'nhsuk-form-group' },
      h('label', { class: 'nhsuk-label', for: `note-${eid}` }, 'Note ', hidden(`for ${person.name}`), '(optional)'),
      h('textarea', { class: 'nhsuk-textarea', id: `note-${eid}`, name: `note-${eid}`, rows: '1', maxlength: '1000', text: entry ? entry.note : '' })),
    person.questionnaire ? questionnaire(person, labels, answers) : null)
}

export function renderRegister (root, session, { today, labels, taken, onSave }) {
  const total = session.session_total
  root.replaceChildren(
    h('span', { class: 'nhsuk-caption-l', text: session.course_title }),
    h('h1', { class: 'nhsuk-heading-l', text: `Register, ${session.date_text}` }),
    h('p', { class: 'app-secondary-text', text: `Session ${session.sequence} of ${total} · ${session.start_time} · ${session.venue}` }))
  if (session.date > today) {
    root.append(h('div', { class: 'nhsuk-inset-text' }, h('p', { text: 'The register opens on the day of the session.' })))
    return
  }
  if (!session.people.length) {
    root.append(h('p', { text: 'Nobody is enrolled on this course yet.' }))
    return
  }
  const marks = {}
  for (const person of session.people) marks[person.enrolment_id] = person.mark
  const answers = {}
  if (taken) {
    for (const entry of taken.entries) marks[entry.enrolment_id] = entry
    for (const q of taken.questionnaires) answers[q.enrolment_id] = q.items
  }
  const summary = h('div')
  const form = h('form', { class: 'app-register', novalidate: true },
    ...session.people.map((person) => personFields(person, marks[person.enrolment_id], labels, answers[person.enrolment_id])),
    h('button', { type: 'submit', class: 'nhsuk-button app-register__save', text: 'Save register' }))
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const { register, errors } = readRegister(form, session, labels.length)
    showErrors(form, summary, errors)
    if (!errors.length) onSave(register)
  })
  root.append(summary, form)
}

function readRegister (form, session, itemCount) {
  const data = new FormData(form)
  const errors = []
  const entries = []
  const questionnaires = []
  const mood = (name) => (data.get(name) === '' || data.get(name) === null ? null : Number(data.get(name)))
  for (const person of session.people) {
    const eid = person.enrolment_id
    const status = data.get(`status-${eid}`)
    if (!status) {
      errors.push({ id: `status-${eid}`, message: `Choose attended, apologies or no show for ${person.given_name}` })
    } else {
      entries.push({
        enrolment_id: eid,
        status,
        mood_before: mood(`mood_before-${eid}`),
        mood_after: mood(`mood_after-${eid}`),
        note: data.get(`note-${eid}`) || ''
      })
    }
    if (person.questionnaire) {
      const items = Array.from({ length: itemCount }, (_, i) => data.get(`item-${eid}-${i + 1}`))
      const answered = items.filter((value) => value !== null)
      if (answered.length === itemCount) {
        questionnaires.push({ enrolment_id: eid, timepoint: person.questionnaire.timepoint, items: items.map(Number) })
      } else if (answered.length) {
        const first = items.findIndex((value) => value === null) + 1
        errors.push({ id: `item-${eid}-${first}`, message: `Answer all ${itemCount} questionnaire items for ${person.given_name}, or none` })
      }
    }
  }
  return { register: { entries, questionnaires }, errors }
}

function showErrors (form, summary, errors) {
  for (const old of form.querySelectorAll('.nhsuk-error-message')) old.remove()
  for (const group of form.querySelectorAll('.nhsuk-form-group--error')) group.classList.remove('nhsuk-form-group--error')
  summary.replaceChildren()
  if (!errors.length) return
  for (const error of errors) {
    const input = form.querySelector(`#${error.id}`)
    const group = input.closest('.nhsuk-form-group') || input.closest('fieldset')
    group.classList.add('nhsuk-form-group--error')
    const message = h('span', { class: 'nhsuk-error-message', id: `${error.id}-error` }, hidden('Error: '), error.message)
    const radiosBlock = input.closest('.nhsuk-radios')
    ;(radiosBlock || input).before(message)
  }
  summary.append(h('div', { class: 'nhsuk-error-summary', 'aria-labelledby': 'error-summary-title', role: 'alert', tabindex: '-1' },
    h('h2', { class: 'nhsuk-error-summary__title', id: 'error-summary-title', text: 'There is a problem' }),
    h('div', { class: 'nhsuk-error-summary__body' },
      h('ul', { class: 'nhsuk-list nhsuk-error-summary__list' },
        ...errors.map((error) => h('li', {}, h('a', { href: `#${error.id}`, text: error.message })))))))
  summary.firstChild.focus()
}
