// tracktrace console: progressive enhancement. Every page works without
// this script; with it, a page with a live region (an element with
// data-stream and data-fragment) follows the console's event stream and,
// when an event arrives, fetches the region anew from the server and swaps
// it in. No HTML is built here: the server renders every fragment.
(function () {
  'use strict';

  function announce(text) {
    var status = document.getElementById('live-status');
    if (status) {
      status.textContent = text;
    }
  }

  function follow(region) {
    var id = region.id;
    var wait = region.dataset.wait === 'entity' ? 1000 : 250; // the list refreshes at most once a second
    var pending = null;
    var timer = null;
    var busy = false;
    var source = new EventSource(region.dataset.stream);

    source.onmessage = function (message) {
      var event;
      try {
        event = JSON.parse(message.data);
      } catch (e) {
        return;
      }
      var current = document.getElementById(id);
      if (current && current.dataset.version && Number(current.dataset.version) >= event.version) {
        return; // an entity page that shows this version already
      }
      pending = event;
      if (!timer) {
        timer = setTimeout(refresh, wait);
      }
    };

    function refresh() {
      timer = null;
      if (busy) {
        timer = setTimeout(refresh, wait);
        return;
      }
      var event = pending;
      var current = document.getElementById(id);
      pending = null;
      if (!event || !current) {
        return;
      }
      var url = new URL(current.dataset.fragment, window.location.href);
      url.searchParams.set('v', String(event.version));
      if (current.dataset.wait === 'entity') {
        url.searchParams.set('entity', event.entityId);
      }
      busy = true;
      fetch(url, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
        .then(function (response) {
          if (!response.ok) {
            throw new Error('fragment: ' + response.status);
          }
          return response.text();
        })
        .then(function (html) {
          var holder = document.createElement('template');
          holder.innerHTML = html.trim();
          var fresh = holder.content.firstElementChild;
          if (!fresh || fresh.id !== id) {
            return;
          }
          var focused = document.activeElement;
          var focusId = focused && current.contains(focused) ? focused.id : '';
          current.replaceWith(fresh);
          if (focusId && document.getElementById(focusId)) {
            document.getElementById(focusId).focus();
          }
          announce('Updated: ' + event.type + ' of ' + event.entityId + '.');
          document.dispatchEvent(new CustomEvent('console:updated', { detail: { region: id, version: event.version } }));
        })
        .catch(function () {
          // The page stays as it was; the next event tries again.
        })
        .finally(function () {
          busy = false;
        });
    }
  }

  function start() {
    if (!window.EventSource || !window.fetch) {
      return;
    }
    document.querySelectorAll('.live-region[data-stream][data-fragment]').forEach(follow);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
