// A stand-in for the JMessage Web SDK (NOT the official SDK): the public shape
// the driver needs (window.JMessage, request builders with onSuccess/onFail/
// onTimeout, onMsgReceive, isLogin/loginOut) plus probes that report what the
// page sees. tests/browser.rs runs it through `driver.js --browser` to check
// the browser mode without the official build. Its prototype has
// sendSingleMsg + onMsgReceive and none of the 2.5.0/2.6.0 methods, so the
// driver detects it as "2.4.0".
(function () {
  'use strict';

  function Request() {
    this.handlers = {};
  }
  ['onSuccess', 'onFail', 'onTimeout', 'onAck'].forEach(function (name) {
    Request.prototype[name] = function (fn) {
      this.handlers[name] = fn;
      return this;
    };
  });
  Request.prototype.fire = function (name, value) {
    if (typeof this.handlers[name] === 'function') this.handlers[name](value);
  };

  function later(ms, fn) {
    var req = new Request();
    setTimeout(function () { fn(req); }, ms);
    return req;
  }

  function JMessage(opts) {
    this.opts = opts || {};
    this.logged = false;
    this.listeners = {};
  }

  JMessage.prototype.init = function (o) {
    var self = this;
    return later(0, function (req) {
      req.fire('onSuccess', {
        code: 0,
        appkey: o && o.appkey,
        address: self.opts.address,
        upload_file: self.opts.upload_file,
        origin: window.location.origin,
        isArray: Array.isArray(o && o.list),
      });
    });
  };

  JMessage.prototype.login = function () {
    var self = this;
    return later(0, function (req) {
      self.logged = true;
      req.fire('onSuccess', { code: 0 });
    });
  };
  JMessage.prototype.isLogin = function () { return this.logged; };
  JMessage.prototype.loginOut = function () { this.logged = false; };
  JMessage.prototype.sendSingleMsg = function () { return new Request(); };

  // Reports the FormData the driver built from a {"$file": ...} placeholder.
  JMessage.prototype.sendSinglePic = function (o) {
    var fd = o && o.image;
    var req = new Request();
    if (!(fd instanceof FormData)) {
      setTimeout(function () { req.fire('onFail', { code: 1, message: 'image is not a FormData' }); }, 0);
      return req;
    }
    var file = fd.get('image');
    file.text().then(function (text) {
      req.fire('onSuccess', {
        code: 0,
        isFile: file instanceof File,
        name: file.name,
        type: file.type,
        size: file.size,
        text: text,
      });
    });
    return req;
  };

  // Answers onTimeout after 30 s of (virtual) time: `advance` makes it fire.
  JMessage.prototype.slow = function () {
    return later(30000, function (req) { req.fire('onTimeout', { code: 'timeout', now: Date.now() }); });
  };

  // Throws inside a timer: the page's uncaught error (an `error` event).
  JMessage.prototype.boom = function () {
    setTimeout(function () { throw new Error('fake sdk boom'); }, 0);
    return 'armed';
  };

  JMessage.prototype.throwNow = function () {
    throw new Error('fake sdk: thrown synchronously');
  };

  // localStorage of this instance's page (isolated per BrowserContext).
  JMessage.prototype.storage = function (key, value) {
    if (value !== undefined) window.localStorage.setItem(key, value);
    return window.localStorage.getItem(key);
  };

  // Dials the server's Engine.IO endpoint from the page and reports the first frame.
  JMessage.prototype.connect = function () {
    var url = this.opts.address + '/socket.io/?EIO=3&transport=websocket';
    return later(0, function (req) {
      var ws = new WebSocket(url);
      ws.onmessage = function (ev) {
        req.fire('onSuccess', { code: 0, first: String(ev.data).slice(0, 200) });
        ws.close();
      };
      ws.onerror = function () { req.fire('onFail', { code: 1, message: 'websocket error' }); };
    });
  };

  JMessage.prototype.onMsgReceive = function (fn) {
    this.listeners.onMsgReceive = fn;
  };

  // Delivers a message to onMsgReceive with values JSON cannot carry.
  JMessage.prototype.emitMsg = function (text) {
    var self = this;
    setTimeout(function () {
      var msg = { text: text, fn: function () {}, blob: new Blob(['abc']) };
      msg.self = msg;
      if (self.listeners.onMsgReceive) self.listeners.onMsgReceive(msg);
    }, 0);
    return null;
  };

  window.JMessage = JMessage;
})();
