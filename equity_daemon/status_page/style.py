"""The status page's one stylesheet, inline (the page's CSP allows inline styles and nothing
else to load).

Colours are variables, set again for `prefers-color-scheme: dark`: the page follows the system.
Under 640 px (a phone) a wide table turns into stacked "column: value" lines (`markup.table`
labels each cell) and a narrow one wraps its cells, so nothing is cut off or scrolls sideways;
long names wrap anywhere.
"""

STYLE = """
:root{color-scheme:light dark;--bg:#f4f6f8;--card:#fff;--line:#e3e7ec;--text:#1d2330;
--muted:#667085;--accent:#2563eb;--area:rgba(37,99,235,.08);--plot:#fbfcfe;
--ok:#15803d;--ok-bg:#dcfce7;--bad:#b42318;--bad-bg:#fee4e2;--warn:#9a6700;--warn-bg:#fef3c7;
--alert:#f59e0b;--band:rgba(245,158,11,.11);--gap:rgba(102,112,133,.14);
--up:#15803d;--down:#b42318}
@media (prefers-color-scheme:dark){:root{--bg:#0e1116;--card:#161b22;--line:#2b323d;
--text:#e6e9ef;--muted:#9aa4b2;--accent:#6ea8fe;--area:rgba(110,168,254,.10);--plot:#11161d;
--ok:#4ade80;--ok-bg:rgba(74,222,128,.13);--bad:#f87171;--bad-bg:rgba(248,113,113,.14);
--warn:#fbbf24;--warn-bg:rgba(251,191,36,.14);--band:rgba(245,158,11,.13);
--gap:rgba(154,164,178,.16);--up:#4ade80;--down:#f87171}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1080px;margin:0 auto;padding:16px}
.top{display:flex;flex-wrap:wrap;align-items:center;gap:8px 16px;margin-bottom:12px}
.brand{font-weight:700;font-size:17px;margin-right:auto}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:18px 20px;
margin-bottom:16px;box-shadow:0 1px 2px rgba(16,24,40,.04);overflow-wrap:anywhere}
h1,h2,h3{margin:0}
h2{font-size:20px}
h3{font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);
margin:18px 0 6px;font-weight:600}
.book-head{display:flex;flex-wrap:wrap;align-items:center;gap:8px 12px}
.headline{display:flex;flex-wrap:wrap;align-items:flex-end;justify-content:space-between;
gap:8px 28px}
.equity{font-size:34px;font-weight:650;margin:6px 0 2px;font-variant-numeric:tabular-nums;
letter-spacing:-.01em}
.unit{font-size:18px;color:var(--muted);font-weight:500}
.equity.unknown,.equity.partial{color:var(--muted)}
.moves{display:flex;flex-wrap:wrap;gap:4px 24px;margin:6px 0 4px}
.moves dt{font-size:12.5px;color:var(--muted)}
.moves dd{margin:0;font-weight:600;font-variant-numeric:tabular-nums;white-space:nowrap}
.moves .up{color:var(--up)}
.moves .down{color:var(--down)}
.band-text{margin:2px 0 4px}
.muted{color:var(--muted)}
.badges{display:flex;flex-wrap:wrap;gap:6px}
.badge{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12.5px;font-weight:600;
white-space:nowrap}
.badge.ok{color:var(--ok);background:var(--ok-bg)}
.badge.bad{color:var(--bad);background:var(--bad-bg)}
.badge.warn{color:var(--warn);background:var(--warn-bg)}
.notice,.problems{background:var(--bad-bg);color:var(--bad);border-radius:8px;margin:10px 0;
padding:8px 12px 8px 28px}
p.notice{padding-left:12px}
.columns{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:0 24px}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{width:100%;border-collapse:collapse;font-size:14px;overflow-wrap:normal}
th.num{text-align:right}
th{text-align:left;font-weight:600;color:var(--muted);font-size:12.5px;padding:6px 10px;
border-bottom:1px solid var(--line);white-space:nowrap}
td{padding:6px 10px;border-bottom:1px solid var(--line);vertical-align:top;white-space:nowrap}
tr:last-child td{border-bottom:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.prose{white-space:normal;min-width:14em}
figure{margin:0}
.chart-head{display:flex;flex-wrap:wrap;align-items:baseline;justify-content:space-between;
gap:4px 12px;margin:18px 0 6px}
.chart-head h3{margin:0}
.ranges{display:flex;gap:4px;font-size:13px}
.ranges a{padding:2px 10px;border-radius:999px;border:1px solid var(--line);text-decoration:none}
.ranges a[aria-current]{background:var(--accent);border-color:var(--accent);color:var(--card);
font-weight:600}
.chart{display:block;width:100%;height:auto;background:var(--plot);border:1px solid var(--line);
border-radius:8px}
.chart .grid{stroke:var(--line);stroke-width:1}
.chart .axis{fill:var(--muted);font-size:11px;font-family:inherit}
.chart .area{fill:var(--area);stroke:none}
.chart .band{fill:var(--band)}
.chart .reference{stroke:var(--alert);stroke-width:1.2;stroke-dasharray:5 4}
.chart .equity{fill:none;stroke:var(--accent);stroke-width:2;stroke-linejoin:round}
.chart .incomplete{fill:var(--card);stroke:var(--bad);stroke-width:2}
.chart .last{fill:var(--accent);stroke:var(--card);stroke-width:2}
.chart .threshold{fill:var(--alert);stroke:var(--card);stroke-width:2}
.chart .gap{fill:var(--gap)}
.legend{font-size:12.5px;margin-top:6px;display:flex;flex-wrap:wrap;align-items:center;
gap:4px 14px}
.key{display:inline-block;width:12px;height:12px;border-radius:50%;margin-right:5px;
vertical-align:-1px}
.key.line{height:3px;border-radius:2px;background:var(--accent);vertical-align:3px}
.key.band{border-radius:2px;background:var(--band);border-top:2px dashed var(--alert)}
.key.threshold{background:var(--alert)}
.key.incomplete{border:2px solid var(--bad)}
.key.gap{border-radius:2px;background:var(--gap)}
footer{text-align:center;font-size:13px;padding:8px 0 24px}
a{color:var(--accent)}
.login{max-width:380px;margin:12vh auto 16px}
.login form{display:grid;gap:8px;margin-top:14px}
input{font:inherit;padding:8px 10px;border:1px solid var(--line);border-radius:8px;
background:var(--card);color:var(--text)}
button{font:inherit;padding:8px 14px;border:0;border-radius:8px;background:var(--accent);
color:#fff;font-weight:600;cursor:pointer}
button.link{background:none;color:var(--accent);padding:0;font-weight:500}
.error{color:var(--bad)}
@media (max-width:640px){main{padding:10px}.card{padding:14px}.equity{font-size:28px}
.chart .axis{font-size:20px}
.scroll{overflow:visible}
td{white-space:normal;overflow-wrap:anywhere}
td.prose{min-width:0}
th,td{padding:6px 6px}
.stack,.stack tbody,.stack tr,.stack td{display:block;width:100%}
.stack thead{display:none}
.stack tr{padding:6px 0;border-bottom:1px solid var(--line)}
.stack tr:last-child{border-bottom:0}
.stack td{display:flex;justify-content:space-between;gap:12px;padding:1px 0;border:0;
text-align:right;min-width:0}
.stack td::before{content:attr(data-label);color:var(--muted);font-size:12.5px;text-align:left;
flex:none;max-width:45%}
.stack td:first-child{font-weight:600;text-align:left}
.stack td:first-child::before,.stack td[colspan]::before{content:none}
.stack td:empty{display:none}}
"""
