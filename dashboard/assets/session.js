// When a session ends (expiry, logout elsewhere, a disabled user), Dash's callbacks start
// answering 401. A wall display must not sit there frozen: go to the login page instead,
// once (several callbacks answer 401 together; a second navigation would abort the first).
(function () {
  const fetch0 = window.fetch;
  let leaving = false;
  window.fetch = function (input, init) {
    return fetch0.apply(this, arguments).then(function (response) {
      const url = typeof input === 'string' ? input : (input && input.url) || '';
      if (response.status === 401 && url.indexOf('/_dash-') !== -1 && !leaving) {
        leaving = true;
        window.location.assign('/login?expired=1&next=' +
          encodeURIComponent(window.location.pathname + window.location.search));
      }
      return response;
    });
  };
})();
