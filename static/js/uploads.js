// The /files upload widget: presign -> direct upload with progress -> confirm -> new row.
// Without JavaScript the same form is a plain multipart POST to /files/upload (the server
// streams the file to storage with the same checks); this script takes over its submit.
// A static file because the CSP forbids inline scripts; htmx handles everything else.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // The page's words (data-messages on the widget, translated by the server), with the
  // values put in place of their __NAME__-style stand-ins.
  var messages = {};

  function text(key, values) {
    var message = messages[key] || key;
    Object.keys(values || {}).forEach(function (name) {
      message = message.split("__" + name.toUpperCase() + "__").join(String(values[name]));
    });
    return message;
  }

  function say(message, isError) {
    var box = document.getElementById("upload-message");
    box.textContent = message;
    box.classList.toggle("field-error", Boolean(isError));
  }

  function checkLocally(widget, kind, file) {
    var limits = JSON.parse(widget.dataset.limits)[kind];
    if (file.size > limits[0]) {
      return text("too_large", { size: Math.round(limits[0] / 1048576) });
    }
    if (limits[1].indexOf(file.type) === -1) {
      return file.type ? text("type_refused", { type: file.type }) : text("unknown_type_refused");
    }
    return null;
  }

  function sendToStorage(ticket, file, progress) {
    return new Promise(function (resolve, reject) {
      var form = new FormData();
      Object.keys(ticket.fields).forEach(function (name) { form.append(name, ticket.fields[name]); });
      form.append("file", file);
      var request = new XMLHttpRequest();
      request.open("POST", ticket.url);
      request.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) { progress.value = Math.round((event.loaded / event.total) * 100); }
      });
      request.addEventListener("load", function () {
        if (request.status >= 200 && request.status < 300) { resolve(); }
        else { reject(new Error(text("storage_refused", { status: request.status }))); }
      });
      request.addEventListener("error", function () { reject(new Error(text("connection"))); });
      request.send(form);
    });
  }

  function insertRow(html) {
    var rows = document.getElementById("file-rows");
    var empty = rows.querySelector("tr.empty");
    if (empty) { empty.remove(); }
    rows.insertAdjacentHTML("afterbegin", html);
    if (window.htmx) { window.htmx.process(rows.firstElementChild); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var widget = document.getElementById("upload-widget");
    if (!widget) { return; }
    messages = JSON.parse(widget.dataset.messages || "{}");
    var form = document.getElementById("upload-form");
    var input = document.getElementById("upload-file");
    var progress = document.getElementById("upload-progress");
    var dropZone = widget.querySelector(".drop-zone");

    ["dragover", "dragenter"].forEach(function (name) {
      dropZone.addEventListener(name, function (event) { event.preventDefault(); dropZone.classList.add("dragging"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      dropZone.addEventListener(name, function () { dropZone.classList.remove("dragging"); });
    });
    dropZone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer.files.length) { input.files = event.dataTransfer.files; }
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var file = input.files[0];
      var kind = document.getElementById("upload-kind").value;
      if (!file) { say(text("choose"), true); return; }
      var problem = checkLocally(widget, kind, file);
      if (problem) { say(problem, true); return; }
      var button = form.querySelector("button");
      button.disabled = true;
      progress.hidden = false;
      progress.value = 0;
      say(text("uploading", { name: file.name }));
      fetch(widget.dataset.presignUrl, {
        method: "POST", credentials: "same-origin",
        // A refusal comes back as problem+json (RFC 9457): the reason is in `detail`.
        headers: { "Content-Type": "application/json", "Accept": "application/json, application/problem+json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({ filename: file.name, content_type: file.type, size: file.size, kind: kind })
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (!response.ok) { throw new Error(body.detail || text("refused")); }
          return body;
        });
      }).then(function (ticket) {
        return sendToStorage(ticket, file, progress).then(function () { return ticket; });
      }).then(function (ticket) {
        return fetch(widget.dataset.confirmUrl.replace("UPLOAD_ID", ticket.upload_id), {
          method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken(), "HX-Request": "true" }
        }).then(function (response) {
          if (!response.ok) { throw new Error(text("not_confirmed")); }
          return response.text();
        });
      }).then(function (rowHtml) {
        insertRow(rowHtml);
        progress.value = 100;
        say(text("uploaded", { name: file.name }));
        form.reset();
      }).catch(function (error) {
        say(error.message, true);
      }).finally(function () {
        button.disabled = false;
      });
    });
  });
}());
