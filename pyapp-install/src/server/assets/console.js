// The console's only script: checks a form's fields before it is sent (the same rules
// the server checks, from the same configuration.yaml, written as HTML attributes), shows
// an upload's progress and the install's events, and follows a log.
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

// Forms with data-validate: each field's problem next to it, nothing sent while one has.
document.querySelectorAll("form[data-validate]").forEach((form) => {
  const show = (field) => {
    const error = document.getElementById("error-" + field.name);
    if (error && field.type !== "hidden") {
      const rule = field.validity.patternMismatch && field.dataset.rule ? " (" + field.dataset.rule + ")" : "";
      error.textContent = field.validity.valid ? "" : field.validationMessage + rule;
    }
    return field.validity.valid;
  };
  form.addEventListener("input", (event) => show(event.target));
  form.addEventListener("submit", (event) => {
    let ok = true;
    form.querySelectorAll("input, select, textarea").forEach((field) => { ok = show(field) && ok; });
    if (!ok) event.preventDefault();
  });
});

// The upload form: the bundle is sent as the request body; the answer is the install's
// server-sent events, shown as they come.
const uploadForm = document.querySelector("form[data-upload]");
if (uploadForm) {
  uploadForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = document.getElementById("bundle").files[0];
    if (!file) return;
    const box = document.getElementById("upload-progress");
    const bar = document.getElementById("bar");
    const phase = document.getElementById("phase");
    const list = document.getElementById("events");
    box.hidden = false;
    list.textContent = "";
    const say = (text) => { const item = document.createElement("li"); item.textContent = text; list.appendChild(item); };
    const request = new XMLHttpRequest();
    request.open("POST", "/api/v1/apps");
    request.setRequestHeader("Content-Type", "application/octet-stream");
    request.setRequestHeader("Accept", "text/event-stream");
    request.setRequestHeader("X-CSRF-Token", csrfToken());
    request.upload.onprogress = (progress) => {
      if (progress.lengthComputable) {
        bar.value = Math.round((100 * progress.loaded) / progress.total);
        phase.textContent = "uploading " + bar.value + "%";
      }
    };
    let seen = 0;
    const events = () => {
      const text = request.responseText;
      const blocks = text.slice(seen).split("\n\n");
      blocks.pop();
      for (const block of blocks) {
        seen += block.length + 2;
        let kind = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) kind = line.slice(6).trim();
          if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (!data) continue;
        const value = JSON.parse(data);
        if (kind === "progress") {
          bar.value = Math.round((100 * value.done) / Math.max(value.len, 1));
          phase.textContent = value.step + " " + value.done + "/" + value.len;
        } else if (kind === "note" || kind === "warning") {
          say(value.message);
        } else if (kind === "result") {
          bar.value = 100;
          phase.textContent = value.action + " " + value.app + " " + value.version;
          phase.className = "done";
          const link = document.createElement("a");
          link.href = "/apps/" + encodeURIComponent(value.app);
          link.textContent = " open " + value.app;
          link.id = "open-app";
          phase.appendChild(link);
        } else if (kind === "error") {
          phase.textContent = value.error + (value.hint ? " (" + value.hint + ")" : "");
          phase.className = "problem";
        }
      }
    };
    request.onprogress = events;
    request.onload = () => {
      if (request.getResponseHeader("Content-Type") === "application/json") {
        const value = JSON.parse(request.responseText);
        phase.textContent = value.error || JSON.stringify(value);
        phase.className = "problem";
      } else {
        events();
      }
    };
    request.onerror = () => { phase.textContent = "the upload failed"; phase.className = "problem"; };
    phase.textContent = "uploading";
    request.send(file);
  });
}

// The log viewer's follow box: new lines matching the filter are added as they come.
const follow = document.getElementById("follow");
if (follow) {
  let source = null;
  follow.addEventListener("change", () => {
    if (source) { source.close(); source = null; }
    if (!follow.checked) return;
    const filter = new URLSearchParams(new FormData(document.getElementById("log-filter")));
    filter.set("follow", "true");
    filter.set("lines", "0");
    source = new EventSource(follow.dataset.follow + "?" + filter.toString());
    const table = document.getElementById("log");
    source.addEventListener("line", (event) => {
      const line = JSON.parse(event.data);
      const row = table.insertRow(-1);
      for (const key of ["time", "source", "message"]) row.insertCell(-1).textContent = line[key];
      row.scrollIntoView({ block: "end" });
    });
  });
}
