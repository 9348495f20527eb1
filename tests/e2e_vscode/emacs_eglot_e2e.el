;;; emacs_eglot_e2e.el --- the same corpus job file in Emacs (Eglot + Flymake), batch  -*- lexical-binding: t -*-
;; Usage: emacs --batch -l emacs_eglot_e2e.el   (not -Q: Debian's site-start puts elpa-eglot on the load-path)
;; Env: MLJOB_E2E_WORKSPACE (required), MLJOB_E2E_PYTHON, MLJOB_E2E_SERVER_COMMAND (JSON argv; negative control).
;; Prints `STEP <name> PASS|FAIL <detail>` lines; exit status 0 only when every step passed.
(require 'eglot)
(require 'flymake)
(require 'json)

(defvar e2e-ws (file-name-as-directory (or (getenv "MLJOB_E2E_WORKSPACE") (error "MLJOB_E2E_WORKSPACE unset"))))
(defvar e2e-python (or (getenv "MLJOB_E2E_PYTHON") "python3"))
(defvar e2e-server
  (let ((custom (getenv "MLJOB_E2E_SERVER_COMMAND")))
    (if (and custom (not (string-empty-p custom)))
        (append (json-read-from-string custom) nil)
      (list e2e-python "-m" "mljob" "lsp"))))
(defvar e2e-failed nil)

(defun e2e-step (name ok detail)
  (unless ok (setq e2e-failed t))
  (princ (format "STEP %s %s %s\n" name (if ok "PASS" "FAIL") detail)))

(defun e2e-wait (seconds pred)
  "Pump process output until PRED is non-nil or SECONDS pass; return PRED's value."
  (let ((deadline (+ (float-time) seconds)) value)
    (while (and (not (setq value (funcall pred))) (< (float-time) deadline))
      (accept-process-output nil 0.1))
    value))

;; Emacs 28 has no YAML mode of its own; a major mode named yaml-mode makes Eglot send languageId "yaml".
(unless (fboundp 'yaml-mode) (define-derived-mode yaml-mode prog-mode "YAML"))
(add-to-list 'eglot-server-programs `(yaml-mode . ,e2e-server))
;; A transient project at the workspace, so Eglot does not ask for one.
(add-hook 'project-find-functions (lambda (_dir) (cons 'transient e2e-ws)))

(message "emacs %s, eglot from %s, server %S" emacs-version (locate-library "eglot") e2e-server)
(find-file (expand-file-name "hello-world-input.yml" e2e-ws))
(yaml-mode)
(let* ((err (condition-case err (progn (apply #'eglot (eglot--guess-contact)) nil) (error err)))
       (server (and (not err) (e2e-wait 20 (lambda () (eglot-current-server))))))
  (e2e-step "start" (and server (jsonrpc-running-p server))
            (if err (format "eglot did not start: %S" err) (format "%S" (and server (eglot--server-info server))))))

;; The diagnostic arrives through Flymake: the misspelt input reference (MLJ201) on line 3.
(let* ((diag (e2e-wait 30 (lambda ()
                            (flymake-start)
                            (seq-find (lambda (d) (string-match-p "hello_strng" (flymake-diagnostic-text d)))
                                      (flymake-diagnostics)))))
       (all (mapconcat #'flymake-diagnostic-text (flymake-diagnostics) " | ")))
  (e2e-step "diagnostics"
            (and diag (eq (flymake-diagnostic-type diag) 'eglot-error)
                 (= 3 (line-number-at-pos (flymake-diagnostic-beg diag))))
            (if diag (format "line %d %s: %s" (line-number-at-pos (flymake-diagnostic-beg diag))
                             (flymake-diagnostic-type diag) (flymake-diagnostic-text diag))
              (format "none matching; flymake has: %s" all))))

;; Completion through the completion-at-point function Eglot installs, on the empty last line (top level).
(goto-char (point-max))
(unless (bolp) (insert "\n"))
(let* ((capf (ignore-errors (eglot-completion-at-point)))
       (labels (and capf (mapcar #'substring-no-properties (all-completions "" (nth 2 capf)))))
       (want '("compute" "display_name")))
  (e2e-step "completion" (seq-every-p (lambda (k) (member k labels)) want)
            (format "wanted %s among %d items: %s" want (length labels)
                    (mapconcat #'identity (seq-take (sort labels #'string<) 30) ","))))

(when (eglot-current-server) (ignore-errors (eglot-shutdown (eglot-current-server))))
(princ (if e2e-failed "SUMMARY FAIL\n" "SUMMARY PASS\n"))
(kill-emacs (if e2e-failed 1 0))
