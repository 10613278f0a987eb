#!/usr/bin/env python3
"""The web console in a real browser (Debian's headless Chromium through chromedriver), against a
running service with the demo data (scripts/browser-test sets all this up):

    browser_test.py URL ADMIN_KEY FINANCE_KEY ACME_TENANT_KEY SCREENSHOT_DIR

Signs in through the form, opens every page, saves a full-page screenshot of each, and checks
that the browser logged no console error, that the key figures in the rendered DOM equal the
API's answers, that a tenant key cannot reach another tenant's page or the capacity page (the
403 page), that a budget form posted without its CSRF token is refused and changes nothing while
the same form with it creates the budget, that a phone-width page does not scroll sideways and
that the keyboard reaches the skip link first. Exits non-zero on the first failure.
"""
import json
import os
import sys
import urllib.parse
import urllib.request
from decimal import Decimal

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.ui import WebDriverWait

url, admin_key, finance_key, tenant_key, shots = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
os.makedirs(shots, exist_ok=True)
checks = 0


def check(condition, message):
    global checks
    if not condition:
        raise SystemExit(f"browser test FAILED: {message}")
    checks += 1


def api(path, key=finance_key):
    request = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + key})
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None


options = webdriver.ChromeOptions()
options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900", "--hide-scrollbars"]:
    options.add_argument(arg)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(options=options, service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")))
driver.set_page_load_timeout(60)


def navigate(action):
    """Does what loads a new page (a click, a submit) and waits until a new document has replaced
    the old one (which carries a mark) and finished loading. (Any error while the page changes
    means "not yet".)"""
    driver.execute_script("window.gplOldDocument = true")
    action()

    def replaced(d):
        try:
            return d.execute_script("return window.gplOldDocument === undefined && document.readyState === 'complete'")
        except WebDriverException:
            return False
    WebDriverWait(driver, 30).until(replaced)


def console_errors(expected=None):
    """The console's errors, but for the page's own status when it is the one expected (a 403 page)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
            and not (expected and entry["source"] == "network" and f"status of {expected} " in entry["message"])]


def shown(element_id):
    """The exact amount in the first <data value> inside the element."""
    return Decimal(driver.find_element(By.ID, element_id).find_element(By.CSS_SELECTOR, "data.usd").get_attribute("value"))


def open_page(path, name, width=1280, expected=None):
    driver.set_window_size(width, 900)
    driver.get(url + path)
    # The whole page in the screenshot: the window's height is the page's plus the browser's frame.
    height = driver.execute_script("return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight")
    driver.set_window_size(width, min(max(height, 600), 8000))
    driver.save_screenshot(os.path.join(shots, name + ".png"))
    errors = console_errors(expected)
    check(not errors, f"{path}: console errors {errors}")
    check(driver.find_element(By.TAG_NAME, "h1").text.strip() != "", f"{path}: no heading")


def sign_in(key):
    driver.get(url + "/signin")
    field = driver.find_element(By.ID, "key")
    field.send_keys(key)
    navigate(field.submit)
    check(urllib.parse.urlparse(driver.current_url).path == "/", f"sign-in did not reach the overview: {driver.current_url}")
    check(driver.get_cookie("gpl_session") is not None and driver.get_cookie("gpl_session")["httpOnly"], "no HttpOnly session cookie")


def sign_out():
    navigate(driver.find_element(By.CSS_SELECTOR, "header form button").click)
    check(urllib.parse.urlparse(driver.current_url).path == "/signin", "sign-out did not return to the sign-in page")


# A rerun starts without the budget this test creates.
try:
    urllib.request.urlopen(urllib.request.Request(url + "/v1/budgets/browser-made", method="DELETE", headers={"Authorization": "Bearer " + admin_key}))
except urllib.error.HTTPError as error:
    check(error.code == 404, f"could not delete an earlier run's budget: {error.code}")

# The sign-in page itself.
driver.get(url + "/signin")
driver.save_screenshot(os.path.join(shots, "00-signin.png"))
check(not console_errors(), "sign-in page: console errors")

sign_in(finance_key)
page_source_has_key = lambda: finance_key in driver.page_source

# Overview: month to date equals /v1/costs.
open_page("/", "01-overview")
status, costs = api("/v1/costs")
check(status == 200 and shown("mtd") == Decimal(costs["total"]["cost_usd"]), f"overview month to date {shown('mtd')} != API {costs['total']['cost_usd']}")
check(not page_source_has_key(), "the overview shows the key")
# The keyboard: the first Tab stop is the skip link, then the navigation.
driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
check(driver.switch_to.active_element.get_attribute("class") == "skip", "the first Tab stop is not the skip link")
driver.switch_to.active_element.send_keys(Keys.TAB)
check(driver.switch_to.active_element.text == "Overview", "the second Tab stop is not the navigation")

# Tenants: each tenant's total equals /v1/chargeback's, for last month (this month's idle share
# grows by the second, as capacity is paid for up to now).
open_page("/tenants", "02-tenants")
navigate(driver.find_element(By.PARTIAL_LINK_TEXT, "←").click)
last_month = urllib.parse.parse_qs(urllib.parse.urlparse(driver.current_url).query)["period"][0]
status, bill = api("/v1/chargeback?period=" + last_month)
rows = driver.find_elements(By.CSS_SELECTOR, "#chargeback tbody tr")
check(len(rows) == len(bill["rows"]) and len(rows) >= 4, f"tenants table has {len(rows)} rows, API {len(bill['rows'])}")
for row in bill["rows"]:
    cell = driver.find_element(By.XPATH, f"//table[@id='chargeback']//tr[td/a[text()='{row['tenant']}']]/td[6]/data")
    check(Decimal(cell.get_attribute("value")) == Decimal(row["total_cost_usd"]), f"tenant {row['tenant']} total differs from the API")
# Sorting by a header link reorders the rows.
navigate(driver.find_element(By.XPATH, "//table[@id='chargeback']//th/a[starts-with(text(),'Tenant')]").click)
names = [r.find_element(By.CSS_SELECTOR, "td a").text for r in driver.find_elements(By.CSS_SELECTOR, "#chargeback tbody tr")]
check(names == sorted(names), f"sorting by tenant gave {names}")
# The CSV download link answers the API's CSV.
link = driver.find_element(By.PARTIAL_LINK_TEXT, "Download CSV").get_attribute("href")
check("/tenants/chargeback.csv" in link, "no CSV link")

open_page("/tenants/acme?period=" + last_month, "03-tenant-acme")
acme = next(r for r in bill["rows"] if r["tenant"] == "acme")
check(shown("tenant-total") == Decimal(acme["total_cost_usd"]), "acme's page total differs from the chargeback")

# Models: requests per model equal /v1/stats over the page's range.
open_page("/models", "04-models")
span = driver.find_element(By.ID, "models-range")
query = urllib.parse.urlencode({"from": span.get_attribute("data-from"), "to": span.get_attribute("data-to"), "group_by": "model"})
status, stats = api("/v1/stats?" + query)
for row in stats["rows"]:
    cell = driver.find_element(By.XPATH, f"//table[@id='models']//tr[td[1][text()='{row['model']}']]/td[2]")
    check(int(cell.text.replace(",", "")) == row["requests"], f"model {row['model']} requests {cell.text} != {row['requests']}")
    p95 = driver.find_element(By.XPATH, f"//table[@id='models']//tr[td[1][text()='{row['model']}']]/td[13]").text
    check(abs(float(p95) - row["e2e_ms"]["p95"]) < 0.051, f"model {row['model']} E2E p95 {p95} != {row['e2e_ms']['p95']}")
check(len(driver.find_elements(By.CSS_SELECTOR, "svg polyline")) >= 1, "no latency chart")

# Budgets: spent equals each budget's status.
open_page("/budgets", "05-budgets")
for name in ["acme-monthly", "fleet-monthly", "globex-quarterly"]:
    status, s = api(f"/v1/budgets/{name}/status")
    cell = driver.find_element(By.XPATH, f"//table[@id='budget-list']//tr[td/a[text()='{name}']]/td[5]/data")
    # A total-basis budget's idle share grows by the second in the current period: within 1%.
    tolerance = Decimal(s["spent_usd"]) / 100 if s["basis"] == "total" else Decimal("0")
    check(abs(Decimal(cell.get_attribute("value")) - Decimal(s["spent_usd"])) <= tolerance, f"budget {name} spent differs from its status")
open_page("/budgets/acme-monthly", "06-budget-acme-monthly")
status, s = api("/v1/budgets/acme-monthly/status")
check(shown("budget-spent") == Decimal(s["spent_usd"]), "acme-monthly spent differs")
check(driver.find_element(By.CSS_SELECTOR, "#budget-state .big").text.replace(" ", "_") == s["state"], "acme-monthly state differs")
check(len(driver.find_elements(By.CSS_SELECTOR, "svg polygon")) == 1, "no forecast band on the burn-up")

# Capacity: the planner's answer equals /v1/forecast/capacity.
open_page("/capacity?pool=h100-east&horizon_days=30&target_utilization=0.7&budget_usd=20000", "07-capacity")
status, plan = api("/v1/forecast/capacity?pool=h100-east&horizon_days=30&target_utilization=0.7&budget_usd=20000")
check(driver.find_element(By.CSS_SELECTOR, "#required-gpus .big").text == str(plan["required_gpus"]), "required GPUs differ from the API")

# A budget form: without its CSRF token refused, nothing stored; with it, created.
driver.get(url + "/budgets/new")
for field, value in [("name", "browser-made"), ("tenant", "initech"), ("amount_usd", "1234.50")]:
    driver.find_element(By.ID, field).send_keys(value)
driver.execute_script("document.querySelector('form[action=\"/budgets\"] input[name=csrf]').remove()")
navigate(driver.find_element(By.XPATH, "//button[text()='Create']").click)
check("CSRF token is missing or wrong" in driver.find_element(By.ID, "refusal").text, "a form without its CSRF token was not refused")
errors = console_errors(403)
check(not errors, f"refused form: console errors {errors}")
check(api("/v1/budgets/browser-made")[0] == 404, "the forged form stored a budget")
driver.get(url + "/budgets/new")
for field, value in [("name", "browser-made"), ("tenant", "initech"), ("amount_usd", "1234.50")]:
    driver.find_element(By.ID, field).send_keys(value)
navigate(driver.find_element(By.XPATH, "//button[text()='Create']").click)
check(urllib.parse.urlparse(driver.current_url).path == "/budgets/browser-made", f"creating a budget went to {driver.current_url}")
status, made = api("/v1/budgets/browser-made")
check(status == 200 and made["amount_usd"] == "1234.50" and made["tenant"] == "initech", f"the created budget reads {made}")
errors = console_errors()
check(not errors, f"budget form: console errors {errors}")

# A phone's width: the page itself does not scroll sideways (wide tables scroll in their box).
open_page("/", "08-overview-phone", width=390)
check(driver.execute_script("return document.documentElement.scrollWidth") <= 392, "the overview scrolls sideways at phone width")
open_page("/tenants", "09-tenants-phone", width=390)
check(driver.execute_script("return document.documentElement.scrollWidth") <= 392, "the tenants page scrolls sideways at phone width")

# A tenant key: its own tenant only.
sign_out()
sign_in(tenant_key)
open_page("/", "10-overview-tenant-acme")
status, mine = api("/v1/costs", key=tenant_key)
check(shown("mtd") == Decimal(mine["total"]["cost_usd"]), "the tenant's overview differs from its /v1/costs")
check("globex" not in driver.page_source, "the tenant's overview names another tenant")
open_page("/tenants/globex", "11-tenant-refused", expected=403)
check("reads only tenant acme" in driver.find_element(By.ID, "refusal").text, "a tenant key reached another tenant's page")
driver.get(url + "/capacity")
check(driver.find_elements(By.ID, "refusal"), "a tenant key reached the capacity page")
check(not console_errors(403), "refusal pages: console errors")

driver.quit()
print(f"browser test passed: {checks} checks, screenshots in {shots}")
