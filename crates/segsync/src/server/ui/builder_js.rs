//! The segment builder's script (Data > Segments): conditions on the profile columns, with
//! operators by the column's kind and values picked from the column's statistics
//! (`GET /api/profiles/columns`), AND/OR groups, NOT, raw SQL parts; the rule it builds goes
//! in the form's hidden `rule` field, and each change is counted live
//! (`POST /api/segment-preview`: the count, the SQL, a sample for contributors, and for a
//! segment exports use, the members that would gain or lose its tag). A draft with a mistake
//! cannot be saved. SQL written in the form's SQL field (with the builder empty) is counted
//! the same way. Without JavaScript the form keeps its SQL field.
//!
//! Served inline and allowed by its hash (see `layout::content_security_policy`).

pub const SCRIPT: &str = r#"
(function () {
  var root = document.getElementById('builder');
  if (!root) return;
  var form = root.closest('form');
  var out = document.getElementById('rule-json');
  var submit = document.getElementById('segment-submit');
  var csrf = (form.querySelector('input[name="csrf"]') || {}).value || '';
  var fmt = new Intl.NumberFormat('en-US');
  var OPS = {
    text: [['is','is'],['is_not','is not'],['one_of','is one of'],['none_of','is none of'],['contains','contains'],['not_contains','does not contain'],['starts_with','starts with'],['ends_with','ends with'],['is_empty','is empty'],['is_not_empty','is not empty']],
    number: [['eq','='],['ne','≠'],['gt','>'],['gte','≥'],['lt','<'],['lte','≤'],['between','between'],['is_empty','is empty'],['is_not_empty','is not empty']],
    date: [['in_last','in the last'],['more_than_ago','more than … ago'],['in_next','in the next'],['on','on'],['before','before'],['after','after'],['between','between'],['is_empty','is empty'],['is_not_empty','is not empty']],
    boolean: [['is_true','is true'],['is_false','is false'],['is_empty','is empty'],['is_not_empty','is not empty']]
  };
  var NONE = ['is_true','is_false','is_empty','is_not_empty'];
  var LIST = ['one_of','none_of'];
  var SPAN = ['in_last','more_than_ago','in_next'];
  var cols = [];
  var model = {type: 'group', op: 'all', not: false, items: []};

  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]);
    });
    (kids || []).forEach(function (k) { if (k) e.appendChild(k); });
    return e;
  }
  function col(name) { return cols.filter(function (c) { return c.name === name; })[0]; }
  function usable() { return cols.filter(function (c) { return c.kind; }); }
  function fromRule(r) {
    if (r.all || r.any) {
      return {type: 'group', op: r.all ? 'all' : 'any', not: false, items: (r.all || r.any).map(fromRule)};
    }
    if (r.not) {
      var g = fromRule(r.not);
      if (g.type === 'group' && !g.not) { g.not = true; return g; }
      return {type: 'group', op: 'all', not: true, items: [g]};
    }
    if (r.condition) return {type: 'cond', column: r.condition.column, op: r.condition.op, value: r.condition.value};
    return {type: 'sql', sql: r.sql || ''};
  }
  function toRule(n) {
    if (n.type === 'cond') {
      var c = {column: n.column, op: n.op};
      if (n.value !== undefined && n.value !== null && NONE.indexOf(n.op) < 0) c.value = n.value;
      return {condition: c};
    }
    if (n.type === 'sql') return {sql: n.sql};
    var g = {}; g[n.op] = n.items.map(toRule);
    return n.not ? {not: g} : g;
  }
  function count(n) {
    return n.type === 'group' ? n.items.reduce(function (a, i) { return a + count(i); }, 0) : 1;
  }
  function newCond() {
    var c = usable()[0];
    var kind = c ? c.kind : 'text';
    return {type: 'cond', column: c ? c.name : '', op: OPS[kind][0][0], value: defaultValue(OPS[kind][0][0])};
  }
  function defaultValue(op) {
    if (SPAN.indexOf(op) >= 0) return {amount: 90, unit: 'days'};
    if (op === 'between') return ['', ''];
    if (LIST.indexOf(op) >= 0) return [];
    return NONE.indexOf(op) >= 0 ? undefined : '';
  }

  function chip(label, title, onclick) {
    var b = el('button', {type: 'button', class: 'chip', title: title || label, text: label});
    b.addEventListener('click', onclick);
    return b;
  }
  function numberHints(c, set) {
    var box = el('span', {class: 'pickers'});
    if (!c || c.min === undefined) return box;
    var pts = [['min', c.min]];
    (c.percentiles || []).forEach(function (p) { pts.push([p.p === 50 ? 'median' : 'p' + p.p, p.value]); });
    pts.push(['max', c.max]);
    pts.forEach(function (p) { box.appendChild(chip(p[0] + ' ' + fmt.format(p[1]), String(p[1]), function () { set(p[1]); })); });
    return box;
  }
  function valueInputs(n, c) {
    var kind = c ? c.kind : 'text';
    var wrap = el('span', {class: 'cond-values'});
    function changed() { update(); }
    if (NONE.indexOf(n.op) >= 0) return wrap;
    if (SPAN.indexOf(n.op) >= 0) {
      var v = (n.value && typeof n.value === 'object') ? n.value : {amount: 90, unit: 'days'};
      n.value = v;
      var amt = el('input', {type: 'number', min: '1', step: '1', class: 'cond-amount', value: v.amount, 'aria-label': 'How many'});
      var unit = el('select', {class: 'cond-unit', 'aria-label': 'Unit'});
      ['days', 'weeks', 'months', 'years'].forEach(function (u) {
        var o = el('option', {value: u, text: u}); if (u === v.unit) o.selected = true; unit.appendChild(o);
      });
      amt.addEventListener('input', function () { v.amount = Number(amt.value); changed(); });
      unit.addEventListener('change', function () { v.unit = unit.value; changed(); });
      wrap.appendChild(amt); wrap.appendChild(unit);
      if (n.op === 'more_than_ago') wrap.appendChild(el('span', {class: 'muted', text: ' ago'}));
      return wrap;
    }
    var type = kind === 'number' ? 'number' : kind === 'date' ? 'date' : 'text';
    function input(cls, val, set, label) {
      var i = el('input', {type: type, class: cls, 'aria-label': label});
      if (type === 'number') i.setAttribute('step', 'any');
      i.value = val === undefined || val === null ? '' : val;
      i.addEventListener('input', function () { set(i.value); changed(); });
      return i;
    }
    function typed(x) { return kind === 'number' && x !== '' && !isNaN(Number(x)) ? Number(x) : x; }
    if (n.op === 'between') {
      if (!Array.isArray(n.value) || n.value.length !== 2) n.value = ['', ''];
      var a = input('cond-value', n.value[0], function (x) { n.value[0] = typed(x); }, 'From');
      var b = input('cond-value2', n.value[1], function (x) { n.value[1] = typed(x); }, 'To');
      wrap.appendChild(a); wrap.appendChild(el('span', {text: ' and '})); wrap.appendChild(b);
      if (kind === 'number') wrap.appendChild(numberHints(c, function (x) { a.value = x; n.value[0] = x; changed(); }));
      return wrap;
    }
    if (LIST.indexOf(n.op) >= 0) {
      if (!Array.isArray(n.value)) n.value = n.value ? [String(n.value)] : [];
      var li = el('input', {type: 'text', class: 'cond-value', placeholder: 'values, separated by commas', 'aria-label': 'Values'});
      li.value = n.value.join(', ');
      li.addEventListener('input', function () {
        n.value = li.value.split(',').map(function (s) { return s.trim(); }).filter(function (s) { return s; });
        changed();
      });
      wrap.appendChild(li);
      var picks = el('span', {class: 'pickers'});
      ((c && c.top) || []).forEach(function (t) {
        picks.appendChild(chip(String(t.value) + ' (' + fmt.format(t.count) + ')', '', function () {
          if (n.value.indexOf(String(t.value)) < 0) n.value.push(String(t.value));
          li.value = n.value.join(', '); changed();
        }));
      });
      wrap.appendChild(picks);
      return wrap;
    }
    if (typeof n.value === 'object') n.value = '';
    var one = input('cond-value', n.value, function (x) { n.value = typed(x); }, 'Value');
    wrap.appendChild(one);
    if (kind === 'number') {
      wrap.appendChild(numberHints(c, function (x) { one.value = x; n.value = x; changed(); }));
    } else if (kind === 'date' && c && c.min) {
      wrap.appendChild(el('span', {class: 'muted small', text: ' from ' + c.min + ' to ' + c.max}));
    } else if (c && c.top) {
      var dl = el('datalist', {id: 'top-' + Math.random().toString(36).slice(2)});
      c.top.forEach(function (t) { dl.appendChild(el('option', {value: String(t.value)})); });
      one.setAttribute('list', dl.id);
      wrap.appendChild(dl);
      var p2 = el('span', {class: 'pickers'});
      c.top.slice(0, 8).forEach(function (t) {
        p2.appendChild(chip(String(t.value) + ' (' + fmt.format(t.count) + ')', '', function () { one.value = t.value; n.value = String(t.value); changed(); }));
      });
      wrap.appendChild(p2);
    }
    return wrap;
  }
  function condRow(n, parent) {
    var row = el('div', {class: 'cond'});
    var cs = el('select', {class: 'cond-column', 'aria-label': 'Column'});
    usable().forEach(function (c) {
      var o = el('option', {value: c.name, text: c.name}); if (c.name === n.column) o.selected = true; cs.appendChild(o);
    });
    var c = col(n.column);
    var kind = c && c.kind ? c.kind : 'text';
    var os = el('select', {class: 'cond-op', 'aria-label': 'Operator'});
    OPS[kind].forEach(function (o) {
      var opt = el('option', {value: o[0], text: o[1]}); if (o[0] === n.op) opt.selected = true; os.appendChild(opt);
    });
    cs.addEventListener('change', function () {
      n.column = cs.value; var k = col(n.column).kind;
      n.op = OPS[k][0][0]; n.value = defaultValue(n.op); render();
    });
    os.addEventListener('change', function () { n.op = os.value; n.value = defaultValue(n.op); render(); });
    row.appendChild(cs); row.appendChild(os); row.appendChild(valueInputs(n, c));
    row.appendChild(removeButton(n, parent));
    return row;
  }
  function sqlRow(n, parent) {
    var row = el('div', {class: 'cond cond-sql'});
    var t = el('textarea', {class: 'cond-sqltext', rows: '2', 'aria-label': 'SQL condition', placeholder: "SQL, e.g. lifetime_value > 500"});
    t.value = n.sql || '';
    t.addEventListener('input', function () { n.sql = t.value; update(); });
    row.appendChild(el('span', {class: 'badge', text: 'SQL'}));
    row.appendChild(t);
    row.appendChild(removeButton(n, parent));
    return row;
  }
  function removeButton(n, parent) {
    var b = el('button', {type: 'button', class: 'btn btn-secondary btn-small cond-remove', 'aria-label': 'Remove', text: '×'});
    b.addEventListener('click', function () { parent.items.splice(parent.items.indexOf(n), 1); render(); });
    return b;
  }
  function groupBox(g, parent) {
    var box = el('div', {class: parent ? 'rule-group nested' : 'rule-group'});
    var head = el('div', {class: 'group-head'});
    var match = el('select', {class: 'group-op', 'aria-label': 'Match'});
    [['all', 'all of (AND)'], ['any', 'any of (OR)']].forEach(function (o) {
      var opt = el('option', {value: o[0], text: o[1]}); if (o[0] === g.op) opt.selected = true; match.appendChild(opt);
    });
    match.addEventListener('change', function () { g.op = match.value; update(); });
    var not = el('input', {type: 'checkbox', class: 'group-not'}); not.checked = !!g.not;
    not.addEventListener('change', function () { g.not = not.checked; update(); });
    head.appendChild(el('span', {text: 'Profiles matching '}));
    head.appendChild(match);
    head.appendChild(el('label', {class: 'check'}, [not, el('span', {text: 'NOT (exclude these)'})]));
    if (parent) head.appendChild(removeButton(g, parent));
    box.appendChild(head);
    g.items.forEach(function (n) {
      box.appendChild(n.type === 'group' ? groupBox(n, g) : n.type === 'sql' ? sqlRow(n, g) : condRow(n, g));
    });
    var tools = el('div', {class: 'group-tools'});
    [['add-condition', '+ Condition', newCond], ['add-group', '+ Group', function () { return {type: 'group', op: 'any', not: false, items: [newCond()]}; }], ['add-sql', '+ SQL condition', function () { return {type: 'sql', sql: ''}; }]].forEach(function (t) {
      var b = el('button', {type: 'button', class: 'btn btn-secondary btn-small ' + t[0], text: t[1]});
      if (!parent) b.id = t[0];
      b.addEventListener('click', function () { g.items.push(t[2]()); render(); });
      tools.appendChild(b);
    });
    box.appendChild(tools);
    return box;
  }
  var area = el('div', {id: 'builder-area'});
  var status = el('div', {class: 'builder-status'});
  var countEl = el('strong', {id: 'live-count', text: '—'});
  var errorEl = el('div', {class: 'flash flash-error', id: 'builder-error', role: 'alert'}); errorEl.hidden = true;
  var sqlBox = el('details', {id: 'view-sql'}, [el('summary', {text: 'View SQL'}), el('pre', {id: 'compiled-sql'})]);
  var changes = el('ul', {id: 'tag-changes', class: 'small'});
  var sample = el('div', {id: 'live-sample', class: 'table-wrap'});
  status.appendChild(el('p', {class: 'live'}, [countEl, el('span', {text: ' profiles match'})]));
  root.appendChild(area); root.appendChild(errorEl); root.appendChild(status);
  root.appendChild(changes); root.appendChild(sqlBox); root.appendChild(sample);

  function render() {
    area.textContent = '';
    area.appendChild(groupBox(model, null));
    update();
  }
  var timer = null, seq = 0;
  function update() {
    var n = count(model);
    out.value = n ? JSON.stringify(toRule(model)) : '';
    clearTimeout(timer);
    timer = setTimeout(live, 300);
  }
  // A rule with a mistake cannot be saved; SQL is checked by the server when saved.
  function fail(msg, rule) {
    errorEl.textContent = msg; errorEl.hidden = false; countEl.textContent = '—';
    if (submit) submit.disabled = !!rule;
  }
  var sqlField = document.getElementById('seg-predicate');
  if (sqlField) sqlField.addEventListener('input', update);
  function draft() {
    if (count(model)) return {rule: toRule(model)};
    var sql = sqlField ? sqlField.value.trim() : '';
    return sql ? {predicate: sql} : null;
  }
  function live() {
    var d = draft();
    if (!d) {
      errorEl.hidden = true; countEl.textContent = '—'; sample.textContent = ''; changes.textContent = '';
      document.getElementById('compiled-sql').textContent = '';
      if (submit) submit.disabled = false;
      return;
    }
    var mine = ++seq;
    var body = d;
    body.sample = root.dataset.sample ? 5 : 0;
    if (root.dataset.segment) body.segment = root.dataset.segment;
    else if (source()) body.source = source();
    fetch('/api/segment-preview', {method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}, body: JSON.stringify(body)})
      .then(function (r) { return r.json().then(function (j) { return [r.ok, j]; }); })
      .then(function (res) {
        if (mine !== seq) return;
        var j = res[1];
        if (!res[0]) { fail(j.message || 'This rule cannot be counted.', !!d.rule); return; }
        errorEl.hidden = true; if (submit) submit.disabled = false;
        countEl.textContent = fmt.format(j.count);
        document.getElementById('compiled-sql').textContent = j.predicate;
        changes.textContent = '';
        (j.tag_changes || []).forEach(function (c) {
          changes.appendChild(el('li', {text: 'Export “' + c.export + '”: ' + fmt.format(c.gain) + ' members would gain the tag “' + c.tag + '”, ' + fmt.format(c.lose) + ' would lose it'}));
        });
        sample.textContent = '';
        if (j.sample && j.sample.length) {
          var t = el('table', {class: 'sample'});
          t.appendChild(el('thead', {}, [el('tr', {}, j.columns.map(function (c) { return el('th', {text: c}); }))]));
          t.appendChild(el('tbody', {}, j.sample.map(function (row) {
            return el('tr', {}, j.columns.map(function (c) { var v = row[c]; return el('td', {text: v === null || v === undefined ? '' : String(v)}); }));
          })));
          sample.appendChild(el('p', {class: 'small muted', text: 'A sample of the matching profiles:'}));
          sample.appendChild(t);
        }
      })
      .catch(function () { if (mine === seq) fail('The count could not be fetched.', false); });
  }
  // The profiles the form reads: its "Profiles from" selector, else the segment's source.
  var picker = document.getElementById('seg-source');
  function source() { return picker ? picker.value : (root.dataset.source || ''); }
  function loadColumns() {
    var s = source();
    return fetch('/api/profiles/columns' + (s ? '?source=' + encodeURIComponent(s) : ''), {credentials: 'same-origin'})
      .then(function (r) { return r.json(); })
      .then(function (j) { cols = Array.isArray(j) ? j : []; });
  }
  if (picker) picker.addEventListener('change', function () {
    // Another source has other columns: the rules start over.
    model = {type: 'group', op: 'all', not: false, items: []};
    loadColumns().then(render);
  });
  // The builder is the way in: the SQL box closes at once, not when the columns arrive,
  // which would undo a click that opened it meanwhile. It opens again if they never do.
  var sqlMode = document.getElementById('sql-mode');
  if (sqlMode && !root.dataset.sqlonly) sqlMode.open = false;
  loadColumns()
    .then(function () {
      if (root.dataset.rule) {
        try { var m = fromRule(JSON.parse(root.dataset.rule)); model = m.type === 'group' ? m : {type: 'group', op: 'all', not: false, items: [m]}; } catch (e) {}
      }
      render();
    })
    .catch(function () { if (sqlMode) sqlMode.open = true; });
})();
"#;
