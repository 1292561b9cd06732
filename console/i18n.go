package console

import "fmt"

// catalog holds every message of the console in each language: Japanese
// (the default) and English. TestCatalogComplete checks that both have
// every key the templates and handlers use.
var catalog = map[string]map[string]string{
	"ja": {
		"nav.desk": "フロント", "nav.txns": "本日の取引", "nav.reservations": "予約", "nav.audit": "ナイトオーディット",
		"nav.auditlog": "操作ログ", "nav.admin": "管理", "nav.logout": "ログアウト",
		"role.clerk": "フロント", "role.reservations": "予約係", "role.auditor": "ナイトオーディター", "role.admin": "管理者",
		"login.title": "ログイン", "login.user": "ユーザー名", "login.password": "パスワード", "login.submit": "ログイン",
		"login.bad":    "ユーザー名またはパスワードが正しくありません。",
		"login.locked": "パスワードを5回続けて間違えたため、このアカウントは1時間ロックされています。",
		"err.title":    "エラー", "err.back": "戻る", "err.session": "ログインしてください(セッションが切れました)。",
		"err.form": "フォームが正しくありません。", "err.csrf": "このフォームは無効です(CSRFトークンがありません)。ページを開き直してください。",
		"err.forbidden": "この操作の権限がありません。", "err.internal": "内部エラーが発生しました。", "err.service": "処理できませんでした。",
		"err.op": "この取引種別はここでは開始できません。", "err.notfound": "見つかりません。",
		"desk.title": "フロント", "desk.terminals": "端末", "desk.start": "決済を開始", "desk.op": "取引種別",
		"desk.terminal": "端末", "desk.amount": "金額(円)", "desk.reference": "予約番号・フォリオ",
		"desk.checkin": "チェックイン(仮売上)", "desk.checkout": "チェックアウト(仮売上)",
		"desk.cardhint": "カード番号は入力しません。お客様に端末でカードを提示していただきます。", "desk.submit": "端末で開始",
		"term.id": "端末ID", "term.kind": "種類", "term.state": "状態", "term.model": "機種", "term.current": "処理中の取引",
		"term.lastseen": "最終応答", "term.none": "端末が設定されていません。",
		"term.ready": "待機中", "term.busy": "処理中", "term.offline": "オフライン",
		"kind.fixed": "据置型", "kind.handheld": "ハンディ",
		"op.preauth": "仮売上(オーソリ)", "op.incremental": "追加オーソリ", "op.completion": "売上確定(チェックアウト)", "op.sale": "売上",
		"op.refund": "返品", "op.void": "取消", "op.cardcheck": "カード有効性確認", "op.noshow": "ノーショー請求",
		"status.pending": "処理中", "status.approved": "承認", "status.declined": "拒否", "status.stood_in": "代行承認",
		"status.reversed": "取消済(リバーサル)", "status.voided": "取消済", "status.cancelled": "中止", "status.unknown": "結果不明",
		"step.created": "受付済み", "step.reading": "端末でカードを提示してください…", "step.card_read": "カードを読み取りました",
		"step.sent": "カード会社に照会中…", "step.answered": "回答を受信しました", "step.queued": "送信待ち(キュー)",
		"step.reversal": "リバーサル処理中", "step.outcome": "端末に結果を表示中", "step.done": "完了",
		"live.title": "取引の進行", "live.ended": "取引は終了しました。", "live.slip": "控えを表示", "live.again": "フロントへ戻る",
		"txn.op": "取引種別", "txn.amount": "金額", "txn.terminal": "端末", "txn.reference": "予約番号", "txn.card": "カード",
		"txn.authcode": "承認番号", "txn.reason": "理由", "txn.time": "日時", "txn.status": "状態", "txn.id": "取引ID",
		"txn.entry": "読取方法", "txn.rrn": "RRN", "txn.batch": "バッチ", "txn.original": "元取引", "txn.refunded": "返品済み",
		"txn.voidedby": "取消取引",
		"txns.title":   "本日の取引", "txns.search": "取引ID・予約番号・カード下4桁・承認番号", "txns.allstatuses": "すべての状態",
		"txns.find": "検索", "txns.none": "該当する取引はありません。",
		"slip.title": "ご利用控え", "slip.events": "履歴", "slip.refund": "返品…", "slip.void": "取消…",
		"followup.refund": "返品", "followup.void": "取消", "followup.original": "元取引", "followup.next": "確認へ",
		"followup.cancel": "やめる", "followup.confirm": "実行する",
		"followup.confirmrefund": "%s円を返品します。よろしいですか?", "followup.confirmvoid": "%sの取引を取り消します。よろしいですか?",
		"audit.title": "ナイトオーディット", "audit.batch": "本日のバッチ", "audit.history": "バッチ履歴", "audit.alerts": "アラート",
		"audit.settlement": "精算レポート", "audit.batchno": "バッチ %d", "audit.opened": "開始", "audit.closed": "締め",
		"audit.byterminal": "端末別", "audit.bybrand": "カードブランド別", "audit.brand": "ブランド", "audit.debits": "売上件数",
		"audit.debitamount": "売上金額", "audit.credits": "返品件数", "audit.creditamount": "返品金額", "audit.empty": "ありません。",
		"audit.closehint": "締め処理を行うと、このバッチの取引は取り消せなくなります。", "audit.close": "締め処理を開始",
		"audit.follow": "締め処理の進行を見る", "audit.lasterror": "エラー",
		"batch.open": "未締め", "batch.closing": "締め処理中", "batch.closed": "締め済み",
		"close.title": "締め処理", "close.phase": "段階", "close.uploaded": "送信 %d / %d 件", "close.done": "%s に締め処理が完了しました。",
		"alerts.none": "確認が必要な項目はありません。", "alerts.failedclose": "締め処理の失敗", "alerts.attempts": "試行 %d 回",
		"alerts.declined": "オフライン承認後に拒否された取引", "alerts.unknown": "結果不明の取引", "alerts.parked": "送信できずに保留中のメッセージ",
		"alerts.queue": "送信待ちキュー: %d 件",
		"settle.from":  "開始日", "settle.to": "終了日", "settle.show": "表示", "settle.csv": "CSVダウンロード", "settle.payouts": "入金予定",
		"settle.none": "この期間の入金予定はありません。", "settle.date": "入金日", "settle.paid": "入金額", "settle.total": "合計",
		"log.user": "ユーザー", "log.search": "操作・取引ID・予約番号", "log.export": "CSVエクスポート", "log.action": "操作",
		"log.detail": "内容", "log.remote": "接続元",
		"admin.status": "接続状況", "admin.link": "カード会社との接続", "admin.queue": "送信待ちキュー", "admin.users": "ユーザーと権限",
		"admin.usershint": "ユーザーの追加とパスワードの設定はサーバーで sterad user add / sterad user passwd を使います。",
		"admin.role":      "権限", "admin.lastlogin": "最終ログイン", "admin.disabled": "無効", "admin.locked": "%s までロック中", "admin.active": "有効",
	},
	"en": {
		"nav.desk": "Front desk", "nav.txns": "Today", "nav.reservations": "Reservations", "nav.audit": "Night audit",
		"nav.auditlog": "Audit log", "nav.admin": "Admin", "nav.logout": "Log out",
		"role.clerk": "clerk", "role.reservations": "reservations", "role.auditor": "night auditor", "role.admin": "administrator",
		"login.title": "Log in", "login.user": "User name", "login.password": "Password", "login.submit": "Log in",
		"login.bad":    "Wrong user name or password.",
		"login.locked": "This account is locked for an hour after 5 wrong passwords in a row.",
		"err.title":    "Error", "err.back": "Back", "err.session": "Please log in (your session ended).",
		"err.form": "The form is not valid.", "err.csrf": "This form is not valid (no CSRF token). Open the page again.",
		"err.forbidden": "You may not do this.", "err.internal": "Internal error.", "err.service": "This could not be done.",
		"err.op": "This operation cannot be started here.", "err.notfound": "Not found.",
		"desk.title": "Front desk", "desk.terminals": "Terminals", "desk.start": "Start a payment", "desk.op": "Operation",
		"desk.terminal": "Terminal", "desk.amount": "Amount (yen)", "desk.reference": "Reservation or folio",
		"desk.checkin": "Check-in (pre-authorization)", "desk.checkout": "Check-out (pre-authorization)",
		"desk.cardhint": "No card number is typed here: the guest presents the card at the terminal.", "desk.submit": "Start at the terminal",
		"term.id": "Terminal", "term.kind": "Kind", "term.state": "State", "term.model": "Model", "term.current": "Current transaction",
		"term.lastseen": "Last seen", "term.none": "No terminal is configured.",
		"term.ready": "ready", "term.busy": "busy", "term.offline": "offline",
		"kind.fixed": "countertop", "kind.handheld": "handheld",
		"op.preauth": "pre-authorization", "op.incremental": "incremental", "op.completion": "check-out (completion)", "op.sale": "sale",
		"op.refund": "refund", "op.void": "void", "op.cardcheck": "card check", "op.noshow": "no-show charge",
		"status.pending": "pending", "status.approved": "approved", "status.declined": "declined", "status.stood_in": "stood in",
		"status.reversed": "reversed", "status.voided": "voided", "status.cancelled": "cancelled", "status.unknown": "outcome unknown",
		"step.created": "received", "step.reading": "Please present the card at the terminal…", "step.card_read": "card read",
		"step.sent": "asking the card issuer…", "step.answered": "answer received", "step.queued": "queued for the acquirer",
		"step.reversal": "reversal under way", "step.outcome": "showing the outcome at the terminal", "step.done": "done",
		"live.title": "Transaction in progress", "live.ended": "The transaction has ended.", "live.slip": "Show the slip", "live.again": "Back to the front desk",
		"txn.op": "Operation", "txn.amount": "Amount", "txn.terminal": "Terminal", "txn.reference": "Reference", "txn.card": "Card",
		"txn.authcode": "Approval code", "txn.reason": "Reason", "txn.time": "Time", "txn.status": "Status", "txn.id": "Transaction",
		"txn.entry": "Entry", "txn.rrn": "RRN", "txn.batch": "Batch", "txn.original": "Original", "txn.refunded": "Refunded",
		"txn.voidedby": "Voided by",
		"txns.title":   "Today's transactions", "txns.search": "ID, reference, last 4 digits, approval code", "txns.allstatuses": "all statuses",
		"txns.find": "Search", "txns.none": "No transaction matches.",
		"slip.title": "Slip", "slip.events": "History", "slip.refund": "Refund…", "slip.void": "Void…",
		"followup.refund": "Refund", "followup.void": "Void", "followup.original": "Original", "followup.next": "Review",
		"followup.cancel": "Cancel", "followup.confirm": "Confirm",
		"followup.confirmrefund": "Refund %s yen. Are you sure?", "followup.confirmvoid": "Void the transaction of %s. Are you sure?",
		"audit.title": "Night audit", "audit.batch": "Today's batch", "audit.history": "Batch history", "audit.alerts": "Alerts",
		"audit.settlement": "Settlement report", "audit.batchno": "batch %d", "audit.opened": "Opened", "audit.closed": "Closed",
		"audit.byterminal": "By terminal", "audit.bybrand": "By card brand", "audit.brand": "Brand", "audit.debits": "Debits",
		"audit.debitamount": "Debit amount", "audit.credits": "Credits", "audit.creditamount": "Credit amount", "audit.empty": "None.",
		"audit.closehint": "Once the batch is closed its transactions can no longer be voided.", "audit.close": "Close the batch",
		"audit.follow": "Follow the close", "audit.lasterror": "Error",
		"batch.open": "open", "batch.closing": "closing", "batch.closed": "closed",
		"close.title": "Batch close", "close.phase": "Phase", "close.uploaded": "uploaded %d of %d", "close.done": "Closed at %s.",
		"alerts.none": "Nothing needs attention.", "alerts.failedclose": "Failed close", "alerts.attempts": "%d attempts",
		"alerts.declined": "Offline approvals the issuer later declined", "alerts.unknown": "Transactions with an unknown outcome", "alerts.parked": "Messages parked in the queue",
		"alerts.queue": "Queue: %d messages owed to the acquirer",
		"settle.from":  "From", "settle.to": "To", "settle.show": "Show", "settle.csv": "Download CSV", "settle.payouts": "Coming payouts",
		"settle.none": "No payout in this period.", "settle.date": "Payout date", "settle.paid": "Paid", "settle.total": "Total",
		"log.user": "User", "log.search": "action, transaction, reference", "log.export": "Export CSV", "log.action": "Action",
		"log.detail": "Detail", "log.remote": "From",
		"admin.status": "Status", "admin.link": "Acquirer link", "admin.queue": "Queue", "admin.users": "Users and roles",
		"admin.usershint": "Users are added and passwords set on the server with sterad user add / sterad user passwd.",
		"admin.role":      "Role", "admin.lastlogin": "Last login", "admin.disabled": "disabled", "admin.locked": "locked until %s", "admin.active": "active",
	},
}

// translate returns key's message in lang, formatted with args; an
// unknown key shows as itself (and fails TestCatalogComplete).
func translate(lang, key string, args ...any) string {
	m, ok := catalog[lang][key]
	if !ok {
		m, ok = catalog["ja"][key]
		if !ok {
			return key
		}
	}
	if len(args) > 0 {
		return fmt.Sprintf(m, args...)
	}
	return m
}
