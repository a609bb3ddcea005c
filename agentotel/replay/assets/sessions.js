/* Sessions list: applies a filter as soon as a select changes (the form works without this script too). */
(function () {
  "use strict";
  var form = document.getElementById("filters");
  if (!form) return;
  Array.prototype.forEach.call(form.querySelectorAll("select"), function (select) {
    select.addEventListener("change", function () {
      form.submit();
    });
  });
})();
