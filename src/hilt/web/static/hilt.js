/* hilt pages: keyboard shortcuts, lease countdown and heartbeat. No dependencies.
   Everything works without this file (plain forms); it only adds speed. */
(function () {
  "use strict";
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var form = document.querySelector("form[data-shortcuts]");
  var questions = form ? Array.prototype.slice.call(form.querySelectorAll("fieldset[data-question]")) : [];
  var active = 0;
  var started = Date.now();
  var lastActivity = Date.now();

  function typing(el) {
    // A select takes no typed text of its own (letters only jump to an option), so the
    // shortcuts stay on there: j/k/g/r/x keep working after a choice moved into one.
    if (!el) return false;
    var tag = el.tagName;
    if (tag === "TEXTAREA") return true;
    if (tag === "INPUT") {
      var t = el.type;
      return t !== "radio" && t !== "checkbox" && t !== "button" && t !== "submit";
    }
    return el.isContentEditable;
  }

  function setActive(i, focus) {
    if (!questions.length) return;
    active = Math.max(0, Math.min(questions.length - 1, i));
    questions.forEach(function (q, j) { q.classList.toggle("active", j === active); });
    if (focus) {
      var q = questions[active];
      var target = q.querySelector("input:checked") || q.querySelector("input,textarea,select");
      if (target) target.focus();
      q.scrollIntoView({block: "nearest"});
    }
  }

  function choose(key) {
    var q = questions[active];
    if (!q) return false;
    var input = q.querySelector('input[data-key="' + key + '"]');
    if (!input || input.disabled) return false;
    if (input.type === "checkbox") input.checked = !input.checked; else input.checked = true;
    input.dispatchEvent(new Event("change", {bubbles: true}));
    input.focus();
    if (input.type === "radio" && active < questions.length - 1) setActive(active + 1, true);
    return true;
  }

  function submit(f, button) {
    if (!f) return;
    // requestSubmit(button) sends the button's name and value, as a click would.
    if (f.requestSubmit) f.requestSubmit(button || undefined);
    else if (button) button.click(); else f.submit();
  }

  questions.forEach(function (q, i) {
    q.addEventListener("focusin", function () { setActive(i, false); });
  });
  if (questions.length) setActive(0, false);

  if (form) {
    var spent = form.querySelector("[data-time-spent]");
    // A refused submission redraws the page with the time already spent: add to it.
    var before = spent ? parseFloat(spent.value) : NaN;
    if (!(before >= 0)) before = 0;
    form.addEventListener("submit", function () {
      if (spent) spent.value = String(Math.round(before + (Date.now() - started) / 1000));
    });
  }

  /* Draft: what was typed into the form is kept in this tab (sessionStorage) until the
     form is saved, so a session that ends before submitting loses nothing: after
     signing in again the task page fills the form in again. */
  var DRAFT = "hilt-draft:";
  var draftKey = form && form.getAttribute("data-draft") ? DRAFT + form.getAttribute("data-draft") : null;
  function kept(el) {
    return el.name && el.name !== "csrf_token" && el.type !== "hidden" &&
      el.type !== "submit" && el.type !== "button" && !el.disabled;
  }
  function saveDraft() {
    var values = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!kept(el)) return;
      if (el.type === "radio" || el.type === "checkbox") {
        if (el.checked) (values[el.name] = values[el.name] || []).push(el.value);
      } else {
        values[el.name] = [el.value];
      }
    });
    try { sessionStorage.setItem(draftKey, JSON.stringify(values)); }
    catch (err) { /* storage off or full: the form still works */ }
  }
  function restoreDraft() {
    var values;
    try { values = JSON.parse(sessionStorage.getItem(draftKey) || "null"); }
    catch (err) { values = null; }
    if (!values) return;
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!kept(el)) return;
      var v = values[el.name] || [];
      if (el.type === "radio" || el.type === "checkbox") el.checked = v.indexOf(el.value) >= 0;
      else if (v.length) el.value = v[0];
    });
    var box = document.getElementById("rewrite");
    if (box && box.value !== box.defaultValue) document.getElementById("rewrite-editor").open = true;
  }
  function clearDrafts(keep) {
    try {
      for (var i = sessionStorage.length - 1; i >= 0; i--) {
        var k = sessionStorage.key(i);
        if (k && k.indexOf(DRAFT) === 0 && k !== keep) sessionStorage.removeItem(k);
      }
    } catch (err) { /* storage off */ }
  }
  // after a save or a release the drafts of this tab are done with (this page's own, a
  // fresh task's, stays); signing out leaves none for whoever uses the tab next (drafts
  // are kept per person too, so a session that merely ended hands none to another)
  if (/^(submitted|released|adjudicated)/.test(new URLSearchParams(location.search).get("msg") || "")) clearDrafts(draftKey);
  var signout = document.querySelector("form.signout");
  if (signout) signout.addEventListener("submit", function () { clearDrafts(null); });
  if (draftKey) {
    // a refused submission is redrawn with what was sent: that is newer than the draft
    if (!form.hasAttribute("data-redrawn")) restoreDraft();
    else {
      // start at the first field at fault, whose reason is read out with it
      var bad = form.querySelector('[aria-invalid="true"]');
      if (bad) {
        var at = bad.closest("fieldset[data-question]");
        if (at) setActive(questions.indexOf(at), false);
        bad.focus();
      }
    }
    form.addEventListener("input", saveDraft);
    form.addEventListener("change", saveDraft);
  }

  document.addEventListener("keydown", function (e) {
    lastActivity = Date.now();
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && form) {
      e.preventDefault();
      submit(form, e.shiftKey ? form.querySelector("[data-submit-next]") : null); return;
    }
    var el = document.activeElement;
    if (e.key === "Escape" && typing(el)) { el.blur(); setActive(active, false); return; }
    if (typing(el) || e.ctrlKey || e.metaKey || e.altKey) return;
    var key = e.key;
    if (/^[0-9]$/.test(key) && form) { if (choose(key)) e.preventDefault(); return; }
    if (key === "j") { e.preventDefault(); setActive(active + 1, true); return; }
    if (key === "k") { e.preventDefault(); setActive(active - 1, true); return; }
    if (key === "x") { var skip = document.querySelector("form[data-skip-form]"); if (skip) { e.preventDefault(); submit(skip); } return; }
    if (key === "n") { var next = document.querySelector("form[data-next-form]"); if (next) { e.preventDefault(); submit(next); } return; }
    if (key === "r") {
      var rw = document.getElementById("rewrite-editor");
      if (rw) {
        e.preventDefault(); rw.open = true;
        // the editor starts with the response text: put the cursor after it, to edit on
        var box = document.getElementById("rewrite");
        box.focus();
        box.setSelectionRange(box.value.length, box.value.length);
      }
      return;
    }
    if (key === "g") { var g = document.getElementById("guidelines"); if (g) { e.preventDefault(); g.focus(); } }
  });
  document.addEventListener("mousedown", function () { lastActivity = Date.now(); });

  /* Lease: count down to expiry; renew it every minute while the reviewer is active. */
  var lease = document.getElementById("lease");
  if (!lease) return;
  var expires = Date.parse(lease.getAttribute("data-lease-expires"));
  var url = lease.getAttribute("data-heartbeat-url");
  var out = lease.querySelector("[data-countdown]");
  var timeEl = lease.querySelector("time");
  // Screen readers hear only this element, and only when its text changes: at two
  // minutes left, at expiry, and when the server refuses a renewal.
  var status = lease.querySelector("[data-lease-status]");
  var refused = false;
  function say(text) { if (status && status.textContent !== text) status.textContent = text; }
  function tick() {
    if (refused) return;
    var left = Math.round((expires - Date.now()) / 1000);
    if (left <= 0) {
      out.textContent = "";
      say("— lease expired; your answers may no longer be accepted");
      lease.classList.add("gone");
      return;
    }
    var m = Math.floor(left / 60), s = left % 60;
    out.textContent = "(" + m + ":" + (s < 10 ? "0" : "") + s + " left)";
    lease.classList.toggle("low", left < 120);
    say(left < 120 ? "Less than 2 minutes left on your lease." : "");
  }
  function refuse(detail) {
    // the server no longer holds the lease for us: stop counting down to a time that
    // no longer means anything, and say why
    refused = true;
    out.textContent = "";
    lease.classList.remove("low");
    lease.classList.add("gone");
    say("— lease not renewed: " + detail);
  }
  function detailOf(r) {
    return r.text().then(function (text) {
      try { var body = JSON.parse(text); if (body && body.detail) return String(body.detail); }
      catch (err) { /* not JSON: fall back to the status */ }
      return "the server answered " + r.status + (r.statusText ? " " + r.statusText : "");
    });
  }
  function beat() {
    if (refused || Date.now() - lastActivity > 5 * 60 * 1000 || expires <= Date.now()) return;
    fetch(url, {method: "POST", credentials: "same-origin", headers: {"X-CSRF-Token": csrf}})
      .then(function (r) {
        if (r.ok) return r.json();
        return detailOf(r).then(function (detail) { refuse(detail); return null; });
      })
      .then(function (body) {
        if (body && body.lease_expires_at) {
          expires = Date.parse(body.lease_expires_at);
          if (timeEl) { timeEl.setAttribute("datetime", body.lease_expires_at); timeEl.textContent = body.lease_expires_at.replace("T", " ").slice(0, 16) + " UTC"; }
          lease.setAttribute("data-lease-expires", body.lease_expires_at);
          tick();
        }
      })
      .catch(function () { /* offline: the countdown shows the truth */ });
  }
  tick();
  setInterval(tick, 1000);
  setInterval(beat, 60 * 1000);
  lease.addEventListener("hilt:heartbeat", beat);
})();
