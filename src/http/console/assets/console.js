// iamlet console: progressive enhancement only; every page works without this script.
// The JSON policy editor validates as one types: the document goes to
// /console/api/validate (Access Analyzer's ValidatePolicy, as the signed-in user), and the
// findings are written back as text (never as markup).
"use strict";
(function () {
  var editor = document.getElementById("policy-json");
  var out = document.getElementById("findings");
  var tokenMeta = document.querySelector('meta[name="csrf-token"]');
  if (!editor || !out || !tokenMeta) {
    return;
  }
  var timer = null;
  var sequence = 0;

  function show(items) {
    while (out.firstChild) {
      out.removeChild(out.firstChild);
    }
    var list = document.createElement("ul");
    list.className = "findings";
    items.forEach(function (item) {
      var li = document.createElement("li");
      li.className = item.kind;
      li.textContent = item.text;
      list.appendChild(li);
    });
    if (items.length === 0) {
      var ok = document.createElement("p");
      ok.className = "ok";
      ok.textContent = "No findings: the policy is valid.";
      out.appendChild(ok);
    } else {
      out.appendChild(list);
    }
  }

  function validate() {
    var text = editor.value;
    try {
      JSON.parse(text);
    } catch (e) {
      show([{ kind: "error", text: "ERROR JSON syntax: " + e.message }]);
      return;
    }
    var mine = ++sequence;
    fetch("/console/api/validate", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": tokenMeta.content },
      body: JSON.stringify({ document: text })
    })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        if (mine !== sequence) {
          return;
        }
        if (body.error) {
          show([{ kind: "error", text: body.error }]);
          return;
        }
        show((body.findings || []).map(function (f) {
          return {
            kind: String(f.findingType || "").toLowerCase(),
            text: f.findingType + " " + f.issueCode + ": " + f.findingDetails
          };
        }));
      })
      .catch(function () { /* the server-side check at review still runs */ });
  }

  editor.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(validate, 400);
  });
  validate();
})();
