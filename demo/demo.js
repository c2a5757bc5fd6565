// The demo shop's pages: catalog, product, cart and sign-in, rendered from the
// catalog below. The personalization comes from the edge through the Kairos
// snippet; this file only sends the shop's events and renders json slots.
(function () {
  'use strict';

  var CATALOG = [
    { id: 'trail-runner', name: 'Trail Runner', price: 89, category: 'shoes', color: '#2f7d5c', text: 'Grippy, light and made for muddy paths.' },
    { id: 'city-sneaker', name: 'City Sneaker', price: 65, category: 'shoes', color: '#3a5ba0', text: 'A clean white sneaker for every day.' },
    { id: 'leather-boot', name: 'Leather Boot', price: 129, category: 'shoes', color: '#7a4b2a', text: 'Waterproof leather that ages well.' },
    { id: 'rain-jacket', name: 'Rain Jacket', price: 110, category: 'jackets', color: '#c8a227', text: 'Sealed seams, packs into its own pocket.' },
    { id: 'wool-sweater', name: 'Wool Sweater', price: 75, category: 'knitwear', color: '#8c3b4a', text: 'Merino wool, warm without the itch.' },
    { id: 'canvas-tote', name: 'Canvas Tote', price: 25, category: 'bags', color: '#6b6b6b', text: 'Carries a week of groceries.' },
    { id: 'day-pack', name: 'Day Pack', price: 59, category: 'bags', color: '#1f4e5f', text: 'Twenty litres, a laptop sleeve, no fuss.' },
    { id: 'sun-cap', name: 'Sun Cap', price: 19, category: 'accessories', color: '#d9662b', text: 'Shade for the trail and the beach.' }
  ];
  var CART_KEY = 'demo_cart';
  var USER_KEY = 'demo_user';

  function kairos() {
    if (window.kairos) window.kairos.apply(window, arguments);
  }
  function $(id) {
    return document.getElementById(id);
  }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  }
  // Amounts as the edge's banners write them (`money('EUR')`): the edge formats in the
  // locale the snippet reports, navigator.language (a `locale` trait would win there, and
  // the demo sets none), with CLDR's data, which Intl uses too. The edge's formatter
  // groups the thousands of every amount, where CLDR lets some languages (Polish,
  // Spanish) leave four digits ungrouped: 'always' does the same here. An unknown
  // locale is English on both sides.
  var MONEY = (function () {
    var options = { style: 'currency', currency: 'EUR', useGrouping: 'always' };
    try {
      return new Intl.NumberFormat(navigator.language || 'en', options);
    } catch (e) {
      return new Intl.NumberFormat('en', options);
    }
  })();
  function money(n) {
    return MONEY.format(Number(n));
  }
  function find(id) {
    for (var i = 0; i < CATALOG.length; i++) if (CATALOG[i].id === id) return CATALOG[i];
    return null;
  }
  function read(key, fallback) {
    try {
      var value = JSON.parse(localStorage.getItem(key));
      return value == null ? fallback : value;
    } catch (e) {
      return fallback;
    }
  }
  function write(key, value) {
    try {
      if (value == null) localStorage.removeItem(key);
      else localStorage.setItem(key, JSON.stringify(value));
    } catch (e) { /* private mode: the cart lives for this page only */ }
  }
  function cartItems() {
    var items = read(CART_KEY, []);
    return Array.isArray(items) ? items : [];
  }
  function updateCartCount() {
    var count = 0;
    cartItems().forEach(function (item) { count += item.quantity; });
    $('cart-count').textContent = String(count);
  }
  // Segment's e-commerce fields for one product.
  function productProps(p) {
    return { product_id: p.id, name: p.name, price: p.price, category: p.category, currency: 'EUR' };
  }

  function card(p) {
    var li = el('li', 'card');
    var a = el('a');
    a.href = '/demo/product?id=' + encodeURIComponent(p.id);
    var swatch = el('span', 'swatch');
    swatch.style.background = p.color; // CSSOM, allowed under a strict style-src
    a.appendChild(swatch);
    a.appendChild(el('span', 'card-name', p.name));
    a.appendChild(el('span', 'muted', p.category));
    a.appendChild(el('span', 'price', money(p.price)));
    li.appendChild(a);
    return li;
  }

  function renderCatalog() {
    var match = /^\/demo\/category\/([^/]+)/.exec(location.pathname);
    var category = match ? decodeURIComponent(match[1]) : null;
    var list = $('catalog');
    CATALOG.filter(function (p) { return !category || p.category === category; })
      .forEach(function (p) { list.appendChild(card(p)); });
    if (category) $('catalog-title').textContent = category.charAt(0).toUpperCase() + category.slice(1);
  }

  function renderProduct() {
    var id = new URLSearchParams(location.search).get('id');
    var p = find(id) || CATALOG[0];
    document.title = p.name + ' – Kairos demo shop';
    $('product-name').textContent = p.name;
    $('product-category').textContent = p.category;
    $('product-price').textContent = money(p.price);
    $('product-text').textContent = p.text;
    $('product').style.borderTopColor = p.color;
    kairos('track', 'Product Viewed', productProps(p));
    $('add-to-cart').addEventListener('click', function () {
      var items = cartItems();
      var line = items.filter(function (item) { return item.product_id === p.id; })[0];
      if (line) line.quantity += 1;
      else items.push({ product_id: p.id, name: p.name, price: p.price, quantity: 1 });
      write(CART_KEY, items);
      updateCartCount();
      var props = productProps(p);
      props.quantity = 1;
      kairos('track', 'Product Added', props);
      $('added').textContent = p.name + ' is in your cart.';
    });
  }

  function renderCart() {
    var list = $('cart-items');
    var items = cartItems();
    var total = 0;
    list.textContent = '';
    items.forEach(function (item) {
      total += item.price * item.quantity;
      list.appendChild(el('li', null, item.quantity + ' × ' + item.name + ' — ' + money(item.price * item.quantity)));
    });
    if (!items.length) list.appendChild(el('li', 'muted', 'Your cart is empty.'));
    $('cart-total').textContent = money(total);
    $('checkout').disabled = !items.length;
    return total;
  }

  function setupCart() {
    renderCart();
    $('checkout').addEventListener('click', function () {
      var items = cartItems();
      if (!items.length) return;
      var revenue = 0;
      items.forEach(function (item) { revenue += item.price * item.quantity; });
      kairos('track', 'Order Completed', {
        order_id: 'demo-' + Date.now().toString(36),
        revenue: revenue,
        currency: 'EUR',
        products: items
      });
      write(CART_KEY, null);
      renderCart();
      updateCartCount();
      $('order-status').textContent = 'Thank you! Your order of ' + money(revenue) + ' is placed.';
    });
  }

  // The "recently viewed" slot: the edge sends product ids as json, the page renders them.
  function setupRecentlyViewed() {
    var slots = document.querySelectorAll('[data-kairos-slot="recently-viewed"]');
    Array.prototype.forEach.call(slots, function (slot) {
      slot.addEventListener('kairos:slot', function (e) {
        var ids = (e.detail && e.detail.products) || [];
        var here = new URLSearchParams(location.search).get('id');
        var products = ids.map(find).filter(function (p) { return p && p.id !== here; }).slice(0, 4);
        slot.textContent = '';
        if (!products.length) return;
        slot.appendChild(el('h2', null, 'Recently viewed'));
        var list = el('ul', 'grid grid-small');
        products.forEach(function (p) { list.appendChild(card(p)); });
        slot.appendChild(list);
      });
    });
  }

  // Sign-in: the demo's stand-in for a backend signs the user id (see /demo/sign),
  // then the snippet tells the edge who this visitor is.
  function setupIdentify() {
    var form = $('identify');
    var status = $('identify-status');
    var user = read(USER_KEY, null);
    if (user && user.first_name) status.textContent = 'Signed in as ' + user.first_name + '.';
    if (user && user.email) inboxLink(user.email);
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var email = form.elements.email.value.trim().toLowerCase();
      var firstName = form.elements.first_name.value.trim();
      if (!email || !firstName) return;
      var userId = 'demo-' + email;
      fetch('/demo/sign?user_id=' + encodeURIComponent(userId))
        .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error('HTTP ' + r.status)); })
        .then(function (body) {
          kairos('identify', userId, { first_name: firstName, email: email }, { userHash: body.userHash });
          kairos('track', 'Signed Up');  // the welcome series starts: see the inbox
          write(USER_KEY, { first_name: firstName, email: email });
          inboxLink(email);
          status.textContent = 'Signed in as ' + firstName + '. Reload to see the page greet you.';
        })
        .catch(function () {
          status.textContent = 'Signing in failed; try again.';
        });
    });
    $('sign-out').addEventListener('click', function () {
      kairos('reset');
      write(USER_KEY, null);
      status.textContent = 'Signed out.';
    });
  }

  function inboxLink(email) {
    var link = $('inbox-link');
    if (link) link.href = '/demo/inbox?to=' + encodeURIComponent(email);
  }

  // Amounts written in the pages themselves, in the same format as the rest.
  function formatAmounts() {
    var amounts = document.querySelectorAll('[data-money]');
    Array.prototype.forEach.call(amounts, function (node) {
      node.textContent = money(node.getAttribute('data-money'));
    });
  }

  var kind = document.body.getAttribute('data-page');
  formatAmounts();
  setupRecentlyViewed();
  setupIdentify();
  updateCartCount();
  if (kind === 'home') renderCatalog();
  else if (kind === 'product') renderProduct();
  else if (kind === 'cart') setupCart();
})();
