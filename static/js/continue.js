// After re-authentication (templates/auth/continue.html): post the carried form again at once.
// Without JavaScript its "Continue" button does the same.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form[data-auto-submit]");
  if (form) form.submit();
});
