/* aifactory: live progress. A section with `data-live="<url>"` follows that event stream
   (server-sent events): each `progress` event carries the section's new HTML, swapped in
   with htmx; `end` means the execution has finished, and the page reloads once to show its
   final state. Packaged with the library and loaded as a file: the pages' CSP allows no
   inline script. */
(function () {
  "use strict";
  var streams = {};

  function follow(section) {
    var url = section.getAttribute("data-live");
    if (!url || streams[url]) { return; }
    var source = new EventSource(url);
    streams[url] = source;
    source.addEventListener("progress", function (event) {
      var current = document.getElementById(section.id);
      if (current) { htmx.swap(current, event.data, { swapStyle: "outerHTML" }); }
    });
    source.addEventListener("end", function () {
      source.close();
      window.location.reload();
    });
  }

  function scan(root) {
    var found = root.querySelectorAll ? root.querySelectorAll("[data-live]") : [];
    for (var i = 0; i < found.length; i++) { follow(found[i]); }
  }

  document.addEventListener("DOMContentLoaded", function () { scan(document); });
})();
