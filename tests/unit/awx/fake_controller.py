"""A minimal in-memory stand-in for the AWX controller's REST API (/api/v2/), for running
awx/configure_awx.yml with the real awx.awx modules where no AWX can run (no container images here).

It keeps what the modules POST and PATCH, answers their list lookups with filters, and serves the related
endpoints they use (associations, survey specs, approval templates, project updates). It does not
validate like AWX does (no playbook list of the project, no credential input schema): tests that use it
check the requests the playbook makes, not AWX's acceptance of them.

    server = FakeController(); server.start(); ... server.url ...; server.stop()
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

API = "/api/v2/"
ASSOCIATIONS = {"credentials", "success_nodes", "failure_nodes", "always_nodes", "instance_groups", "labels",
                "galaxy_credentials", "notification_templates_started", "notification_templates_success",
                "notification_templates_error", "notification_templates_approvals", "input_inventories"}
UNIFIED = ("job_templates", "workflow_job_templates", "projects", "inventory_sources", "workflow_approval_templates")
TYPE_OF = {"organizations": "organization", "execution_environments": "execution_environment",
           "credential_types": "credential_type", "credentials": "credential", "projects": "project",
           "inventories": "inventory", "inventory_sources": "inventory_source", "job_templates": "job_template",
           "workflow_job_templates": "workflow_job_template", "workflow_job_template_nodes": "workflow_job_template_node",
           "schedules": "schedule", "workflow_approval_templates": "workflow_approval_template",
           "project_updates": "project_update", "instance_groups": "instance_group", "labels": "label"}


class FakeController:
    def __init__(self):
        self.lock = threading.Lock()
        self.next_id = 100
        self.objects = {}   # collection -> {id: object}
        self.links = {}     # (collection, id, relation) -> [ids]
        self.surveys = {}   # (collection, id) -> spec
        self.requests = []  # (method, path, query, body)
        for name, kind, secret in (("Machine", "ssh", ("password", "ssh_key_data", "ssh_key_unlock", "become_password")),
                                   ("Source Control", "scm", ("password", "ssh_key_data", "ssh_key_unlock")),
                                   ("Container Registry", "registry", ("password",)), ("Vault", "vault", ("vault_password",))):
            self._create("credential_types", {"name": name, "kind": kind, "managed": True,
                                              "inputs": {"fields": [{"id": f, "secret": True} for f in secret]}})
        self.server = None
        self.thread = None

    # -- storage -----------------------------------------------------------------------------
    def _create(self, collection, body):
        self.next_id += 1
        oid = self.next_id
        url = "%s%s/%d/" % (API, collection, oid)
        obj = dict(body)
        obj.update(id=oid, type=TYPE_OF.get(collection, collection.rstrip("s")), url=url, summary_fields={},
                   related={rel: url + rel + "/" for rel in sorted(ASSOCIATIONS | {"survey_spec", "create_approval_template",
                                                                                   "update", "copy"})})
        if collection == "projects":
            update = self._create("project_updates", {"status": "successful", "project": oid})
            obj["summary_fields"]["current_update"] = {"id": update["id"], "status": "successful"}
            obj.setdefault("scm_revision", "0" * 40)
        self.objects.setdefault(collection, {})[oid] = obj
        return obj

    def find(self, collection, **fields):
        return [o for o in self.objects.get(collection, {}).values()
                if all(o.get(k) == v for k, v in fields.items())]

    def one(self, collection, **fields):
        found = self.find(collection, **fields)
        assert len(found) == 1, "%s %s: %d objects" % (collection, fields, len(found))
        return found[0]

    def linked(self, obj, relation):
        collection = obj["url"].split("/")[3]
        return list(self.links.get((collection, obj["id"], relation), []))

    def survey(self, obj):
        return self.surveys.get((obj["url"].split("/")[3], obj["id"]), {})

    def _view(self, obj):
        """What the API shows: like AWX, the secret inputs of a credential read back as $encrypted$."""
        if obj.get("type") != "credential" or not isinstance(obj.get("inputs"), dict):
            return obj
        ctype = self.objects.get("credential_types", {}).get(obj.get("credential_type"), {})
        secret = {f["id"] for f in (ctype.get("inputs") or {}).get("fields", []) if f.get("secret")}
        shown = dict(obj)
        shown["inputs"] = {k: ("$encrypted$" if k in secret and v else v) for k, v in obj["inputs"].items()}
        return shown

    # -- HTTP --------------------------------------------------------------------------------
    def _list(self, collection, query):
        if collection == "unified_job_templates":
            items = [o for c in UNIFIED for o in self.objects.get(c, {}).values()]
        else:
            items = list(self.objects.get(collection, {}).values())
        ors = {k[4:]: v for k, v in query.items() if k.startswith("or__")}
        plain = {k: v for k, v in query.items() if not k.startswith("or__") and k not in ("page_size", "order_by", "page")}

        def match(obj):
            if any(str(obj.get(k)) != v for k, v in plain.items()):
                return False
            return not ors or any(str(obj.get(k)) == v for k, v in ors.items())
        results = [self._view(o) for o in items if match(o)]
        return 200, {"count": len(results), "results": results, "next": None, "previous": None}

    def handle(self, method, path, query, body):
        with self.lock:
            self.requests.append((method, path, query, body))
            if not path.startswith(API):
                return 404, {"detail": "not found"}
            parts = [p for p in path[len(API):].split("/") if p]
            if not parts:
                return 200, {"ping": "/api/v2/ping/"}
            collection = parts[0]
            if len(parts) == 1:
                if method == "GET":
                    return self._list(collection, query)
                if method == "POST":
                    return 201, self._view(self._create(collection, body))
                return 405, {"detail": "method"}
            oid = int(parts[1])
            obj = self.objects.get(collection, {}).get(oid)
            if obj is None:
                return 404, {"detail": "not found"}
            if len(parts) == 2:
                if method == "GET":
                    return 200, self._view(obj)
                if method in ("PATCH", "PUT"):
                    obj.update(body)
                    return 200, self._view(obj)
                if method == "DELETE":
                    del self.objects[collection][oid]
                    return 204, None
                return 405, {"detail": "method"}
            relation = parts[2]
            if relation == "survey_spec":
                key = (collection, oid)
                if method == "GET":
                    return 200, self.surveys.get(key, {})
                if method == "POST":
                    self.surveys[key] = body
                    return 200, {}
                if method == "DELETE":  # AWX answers 200 with an empty body here
                    self.surveys.pop(key, None)
                    return 200, {}
            if relation == "create_approval_template" and method == "POST":
                template = self._create("workflow_approval_templates", body)
                obj["unified_job_template"] = template["id"]
                obj["related"]["unified_job_template"] = template["url"]
                return 201, template
            if relation in ASSOCIATIONS:
                key = (collection, oid, relation)
                ids = self.links.setdefault(key, [])
                if method == "GET":
                    members = [o for c in self.objects.values() for o in c.values() if o["id"] in ids]
                    members.sort(key=lambda o: ids.index(o["id"]))
                    return 200, {"count": len(members), "results": members, "next": None, "previous": None}
                if method == "POST":
                    if body.get("disassociate"):
                        ids.remove(int(body["id"]))
                    elif int(body["id"]) not in ids:
                        ids.append(int(body["id"]))
                    return 204, None
            return 404, {"detail": "no %s on %s" % (relation, collection)}

    def start(self):
        controller = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else {}
                status, payload = controller.handle(self.command, split.path, dict(parse_qsl(split.query)), body)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-API-Product-Name", "AWX")
                self.send_header("X-API-Product-Version", "24.6.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if data:
                    self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
