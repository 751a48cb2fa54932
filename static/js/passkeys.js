/* Passkeys (WebAuthn): the "Sign in with a passkey" button (templates/auth/_passkey_sign_in.html)
   and "Add a passkey" (templates/account/security/_passkeys.html).

   Both are forms the server renders hidden, with the ceremony's options (JSON, made by
   app.auth.passkeys) in `data-passkey-options`. Where the browser has WebAuthn this script shows
   them; the button runs navigator.credentials.get() / .create(), puts the JSON of the result in
   the hidden `passkey_credential` field and submits the form: the server checks everything.
   Without JavaScript or WebAuthn nothing passkey-related is shown (the password and codes still
   work). No inline code anywhere (CSP). */
(function () {
  "use strict";

  if (window.hearthPasskeys) return; // included twice on one page: wire once
  window.hearthPasskeys = true;

  function supported() {
    return !!(window.PublicKeyCredential && navigator.credentials && window.isSecureContext);
  }

  // A passkey only works on its relying party's domain (WEBAUTHN_RP_ID): a page reached under
  // another name (an IP address, an old host name) would only meet a SecurityError.
  function forThisSite(json) {
    var options;
    try {
      options = JSON.parse(json);
    } catch (error) {
      return false;
    }
    var rpId = options.rpId || (options.rp && options.rp.id) || "";
    var host = window.location.hostname;
    return host === rpId || host.slice(-rpId.length - 1) === "." + rpId;
  }

  // base64url <-> ArrayBuffer (the JSON forms of WebAuthn carry bytes as unpadded base64url).
  function toBuffer(value) {
    var base64 = String(value).replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var binary = window.atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    if (!buffer) return null;
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return window.btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      var copy = { type: item.type, id: toBuffer(item.id) };
      if (item.transports) copy.transports = item.transports;
      return copy;
    });
  }

  function creationOptions(json) {
    var options = JSON.parse(json);
    options.challenge = toBuffer(options.challenge);
    options.user.id = toBuffer(options.user.id);
    options.excludeCredentials = descriptors(options.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    var options = JSON.parse(json);
    options.challenge = toBuffer(options.challenge);
    options.allowCredentials = descriptors(options.allowCredentials);
    return options;
  }

  function credentialJSON(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toBase64url(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      json.response.attestationObject = toBase64url(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = toBase64url(response.authenticatorData);
      json.response.signature = toBase64url(response.signature);
      json.response.userHandle = toBase64url(response.userHandle);
    }
    return JSON.stringify(json);
  }

  function say(form, message) {
    var status = form.querySelector("[data-passkey-status]");
    if (status) status.textContent = message || "";
  }

  function failure(form, error) {
    // The person closed the dialog or it timed out: not an error worth more than a line.
    var cancelled = error && (error.name === "NotAllowedError" || error.name === "AbortError");
    var known = error && error.name === "InvalidStateError" && form.dataset.passkeyKnown;
    say(form, known ? form.dataset.passkeyKnown : cancelled ? form.dataset.passkeyCancelled : form.dataset.passkeyFailed);
  }

  function submitWith(form, credential) {
    form.querySelector('input[name="passkey_credential"]').value = credentialJSON(credential);
    form.submit();
  }

  function wireGet(form) {
    var button = form.querySelector("[data-passkey-start]");
    if (!button) return;
    button.addEventListener("click", function () {
      var options;
      try {
        options = requestOptions(form.dataset.passkeyOptions);
      } catch (error) {
        failure(form, error);
        return;
      }
      say(form, "");
      button.disabled = true;
      navigator.credentials.get({ publicKey: options }).then(function (credential) {
        submitWith(form, credential);
      }, function (error) {
        button.disabled = false;
        failure(form, error);
      });
    });
  }

  function wireCreate(form) {
    form.addEventListener("submit", function (event) {
      var field = form.querySelector('input[name="passkey_credential"]');
      if (field.value) return; // the credential is in: let it go
      event.preventDefault();
      if (!form.reportValidity()) return;
      var options;
      try {
        options = creationOptions(form.dataset.passkeyOptions);
      } catch (error) {
        failure(form, error);
        return;
      }
      var button = form.querySelector('button[type="submit"]');
      say(form, "");
      if (button) button.disabled = true;
      navigator.credentials.create({ publicKey: options }).then(function (credential) {
        submitWith(form, credential);
      }, function (error) {
        if (button) button.disabled = false;
        failure(form, error);
      });
    });
  }

  function init() {
    var ok = supported();
    var creatable = false;
    if (ok) {
      document.querySelectorAll("form[data-passkey-get]").forEach(function (form) {
        if (!forThisSite(form.dataset.passkeyOptions)) return;
        wireGet(form);
        form.hidden = false;
      });
      document.querySelectorAll("form[data-passkey-create]").forEach(function (form) {
        if (!forThisSite(form.dataset.passkeyOptions)) return;
        wireCreate(form);
        form.hidden = false;
        creatable = true;
      });
    }
    // "Adding a passkey needs JavaScript and a browser that supports passkeys" stays where no
    // passkey can be made here.
    document.querySelectorAll("[data-passkey-unsupported]").forEach(function (note) {
      note.hidden = creatable || (ok && !document.querySelector("form[data-passkey-create]"));
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
