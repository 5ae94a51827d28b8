"""The hosted pages' words, in English, German and French: the challenge page's
(`TRANSLATIONS`), the email magic link's page's (`MAGIC_LINK`) and the push enrolment pages'
(`PUSH_ENROLMENT`), each a catalogue of the same three languages.

The language is the track's `locale` when a translation exists for it (its primary subtag:
`de-CH` reads German), then the user's `locale`, then the browser's `Accept-Language`, then
English. A page without a track to read (the magic link's, the push enrolment link's landing
page) goes by `Accept-Language` alone. A key missing from a translation falls back to its
English text. Placeholders (`{tenant}`, `{rp_id}`, `{host}`, `{email}`) are filled in by the
server before the page is sent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

DEFAULT_LANGUAGE = "en"

ENGLISH = {
    "title_sign_in": "Confirm it's you",
    "title_enrol": "Create a passkey",
    "intro_sign_in": "{tenant} needs to confirm it's you.",
    "intro_enrol": (
        "Create a passkey for {tenant}: you will confirm it's you with your fingerprint, "
        "face or screen lock."
    ),
    "passkey_button": "Continue with a passkey",
    "enrol_button": "Create a passkey",
    "push_heading": "Approve on your device",
    "push_instructions": "Enter this number in the {tenant} app on your device:",
    "push_instructions_no_code": "Approve the request in the {tenant} app on your device.",
    "verification_code_label": "Number to enter on your device",
    "push_send": "Send a request to my device",
    "push_send_again": "Send a new request",
    "push_waiting": "Waiting for your device…",
    "push_expired": "The request expired before it was answered.",
    "push_declined": "The request was declined on your device.",
    "push_rate_limited": "Too many requests were sent. Wait a few minutes and try again.",
    "show_push": "Use my device instead",
    "cancel": "Cancel",
    "close": "Close",
    "passkey_waiting": "Follow your browser's prompt…",
    "checking": "Checking…",
    "success": "Done: it's confirmed.",
    "success_close": "Done: it's confirmed. You can close this page.",
    "returning": "Returning you to {tenant}…",
    "canceled": "Cancelled. You can close this page.",
    "passkey_canceled": "The passkey prompt was closed or timed out. Try again when ready.",
    "passkey_exists": "This device already has a passkey for your account.",
    "passkey_refused": "That passkey could not be used here.",
    "passkeys_unsupported": "This browser cannot use passkeys.",
    "unavailable_no_public_url": (
        "Passkeys are not available on this page: the server has no public URL configured."
    ),
    "unavailable_rp_id_elsewhere": (
        "Passkeys for {rp_id} cannot be used on {host}, where this page runs."
    ),
    "nothing_offered": "There is no way to confirm it's you on this page. Contact {tenant}.",
    "network_error": "The server could not be reached. Check your connection and try again.",
    "error_generic": "Something went wrong. Try again.",
    "redirect_refused": "This page cannot return you to an address that is not {tenant}'s.",
    "error_title": "This link cannot be used",
    "invalid_token": "This link is not valid. Go back and start again.",
    "expired_token": "This link has expired. Go back and start again.",
    "action_not_found": "This request no longer exists. Go back and start again.",
    "token_used": "This link has already been used.",
    "action_blocked": "This request was blocked.",
    # Fallback methods and recovery.
    "try_another_way": "Try another way",
    "lost_device": "I lost my device",
    "fallback_heading": "Other ways to confirm it's you",
    "fallback_email_otp": "Email me a code",
    "fallback_sms": "Text me a code",
    "fallback_whatsapp": "Send me a code on WhatsApp",
    "fallback_authenticator_app": "Use a code from my authenticator app",
    "fallback_security_key": "Use my security key",
    "fallback_email_magic_link": "Email me a sign-in link",
    "fallback_recovery_code": "Use a recovery code",
    "fallback_offered": "That did not work. You can try another way below.",
    "code_label_email_otp": "Enter the code we emailed you",
    "code_label_sms": "Enter the code we texted you",
    "code_label_whatsapp": "Enter the code we sent you on WhatsApp",
    "code_label_authenticator_app": "Enter the code your authenticator app shows",
    "code_label_recovery_code": "Enter one of your recovery codes",
    "code_submit": "Confirm",
    "code_resend": "Send a new code",
    "code_sent": "Code sent.",
    "code_invalid": "That code is wrong or has expired. Check it and try again.",
    "code_max_attempts": "Too many wrong codes. Ask for a new one.",
    "magic_link_sent": (
        "We emailed you a link. Open it (on any device) and confirm there; this page goes on by"
        " itself."
    ),
    "delivery_not_configured": "{tenant} cannot send that right now. Try another way.",
    "security_key_waiting": "Use your security key…",
    "recover_intro": (
        "It's you. Create a passkey on this device now, so you can sign in next time without "
        "your old one."
    ),
    "recover_skip": "Not now",
    "recover_intro_push": (
        "It's you. Add a new way to sign in now, so you can sign in next time without your old one."
    ),
    "recover_push": "Add a push device instead",
    "recover_push_only": "Add a push device",
    "recover_push_hint": (
        "A push device is a phone or computer with the app: a new tab shows a QR code to scan "
        "with it."
    ),
    "recover_push_opened": (
        "Scan the QR code in the new tab with the app on your phone or computer, then come "
        "back here and press Done."
    ),
    "manage_heading": "Your sign-in methods",
    "manage_intro": "Remove the ones you no longer have, such as a lost phone.",
    "manage_none": "No sign-in methods left.",
    "remove": "Remove",
    "removed": "Removed.",
    "done": "Done",
    "method_passkey": "Passkey",
    "method_push": "App on your device",
    "method_security_key": "Security key",
    "method_email_otp": "Email codes",
    "method_email_magic_link": "Email links",
    "method_sms": "Text message codes",
    "method_whatsapp": "WhatsApp codes",
    "method_authenticator_app": "Authenticator app",
    "method_recovery_code": "Recovery codes",
}

GERMAN = {
    "title_sign_in": "Bestätigen Sie, dass Sie es sind",
    "title_enrol": "Passkey erstellen",
    "intro_sign_in": "{tenant} muss bestätigen, dass Sie es sind.",
    "intro_enrol": (
        "Erstellen Sie einen Passkey für {tenant}: Sie bestätigen sich dann mit Fingerabdruck, "
        "Gesicht oder Bildschirmsperre."
    ),
    "passkey_button": "Mit Passkey fortfahren",
    "enrol_button": "Passkey erstellen",
    "push_heading": "Auf Ihrem Gerät bestätigen",
    "push_instructions": "Geben Sie diese Zahl in der App von {tenant} auf Ihrem Gerät ein:",
    "push_instructions_no_code": "Bestätigen Sie die Anfrage in der App von {tenant}.",
    "verification_code_label": "Zahl zur Eingabe auf Ihrem Gerät",
    "push_send": "Anfrage an mein Gerät senden",
    "push_send_again": "Neue Anfrage senden",
    "push_waiting": "Warten auf Ihr Gerät…",
    "push_expired": "Die Anfrage ist abgelaufen, bevor sie beantwortet wurde.",
    "push_declined": "Die Anfrage wurde auf Ihrem Gerät abgelehnt.",
    "push_rate_limited": (
        "Zu viele Anfragen. Warten Sie einige Minuten und versuchen Sie es erneut."
    ),
    "show_push": "Stattdessen mein Gerät verwenden",
    "cancel": "Abbrechen",
    "close": "Schließen",
    "passkey_waiting": "Folgen Sie der Aufforderung Ihres Browsers…",
    "checking": "Wird geprüft…",
    "success": "Erledigt: bestätigt.",
    "success_close": "Erledigt: bestätigt. Sie können diese Seite schließen.",
    "returning": "Sie werden zu {tenant} zurückgeleitet…",
    "canceled": "Abgebrochen. Sie können diese Seite schließen.",
    "passkey_canceled": (
        "Die Passkey-Abfrage wurde geschlossen oder ist abgelaufen. Versuchen Sie es erneut."
    ),
    "passkey_exists": "Dieses Gerät hat bereits einen Passkey für Ihr Konto.",
    "passkey_refused": "Dieser Passkey kann hier nicht verwendet werden.",
    "passkeys_unsupported": "Dieser Browser unterstützt keine Passkeys.",
    "unavailable_no_public_url": (
        "Passkeys sind auf dieser Seite nicht verfügbar: Der Server hat keine öffentliche URL."
    ),
    "unavailable_rp_id_elsewhere": (
        "Passkeys für {rp_id} können auf {host}, wo diese Seite läuft, nicht verwendet werden."
    ),
    "nothing_offered": (
        "Auf dieser Seite ist keine Bestätigung möglich. Wenden Sie sich an {tenant}."
    ),
    "network_error": "Der Server ist nicht erreichbar. Prüfen Sie Ihre Verbindung.",
    "error_generic": "Etwas ist schiefgelaufen. Versuchen Sie es erneut.",
    "redirect_refused": "Diese Seite leitet nicht zu einer Adresse außerhalb von {tenant} weiter.",
    "error_title": "Dieser Link kann nicht verwendet werden",
    "invalid_token": "Dieser Link ist ungültig. Gehen Sie zurück und beginnen Sie erneut.",
    "expired_token": "Dieser Link ist abgelaufen. Gehen Sie zurück und beginnen Sie erneut.",
    "action_not_found": "Diese Anfrage existiert nicht mehr. Beginnen Sie erneut.",
    "token_used": "Dieser Link wurde bereits verwendet.",
    "action_blocked": "Diese Anfrage wurde blockiert.",
    "try_another_way": "Anders bestätigen",
    "lost_device": "Ich habe mein Gerät verloren",
    "fallback_heading": "Andere Wege, sich zu bestätigen",
    "fallback_email_otp": "Code per E-Mail senden",
    "fallback_sms": "Code per SMS senden",
    "fallback_whatsapp": "Code per WhatsApp senden",
    "fallback_authenticator_app": "Code aus meiner Authenticator-App verwenden",
    "fallback_security_key": "Meinen Sicherheitsschlüssel verwenden",
    "fallback_email_magic_link": "Anmeldelink per E-Mail senden",
    "fallback_recovery_code": "Wiederherstellungscode verwenden",
    "fallback_offered": "Das hat nicht geklappt. Unten können Sie es anders versuchen.",
    "code_label_email_otp": "Geben Sie den Code aus der E-Mail ein",
    "code_label_sms": "Geben Sie den Code aus der SMS ein",
    "code_label_whatsapp": "Geben Sie den Code aus WhatsApp ein",
    "code_label_authenticator_app": "Geben Sie den Code Ihrer Authenticator-App ein",
    "code_label_recovery_code": "Geben Sie einen Ihrer Wiederherstellungscodes ein",
    "code_submit": "Bestätigen",
    "code_resend": "Neuen Code senden",
    "code_sent": "Code gesendet.",
    "code_invalid": (
        "Der Code ist falsch oder abgelaufen. Prüfen Sie ihn und versuchen Sie es erneut."
    ),
    "code_max_attempts": "Zu viele falsche Codes. Fordern Sie einen neuen an.",
    "magic_link_sent": (
        "Wir haben Ihnen einen Link gesendet. Öffnen Sie ihn (auf einem beliebigen Gerät) und "
        "bestätigen Sie dort; diese Seite macht dann von selbst weiter."
    ),
    "delivery_not_configured": "{tenant} kann das gerade nicht senden. Versuchen Sie es anders.",
    "security_key_waiting": "Verwenden Sie Ihren Sicherheitsschlüssel…",
    "recover_intro": (
        "Bestätigt. Erstellen Sie jetzt einen Passkey auf diesem Gerät, damit Sie sich künftig "
        "ohne Ihr altes Gerät anmelden können."
    ),
    "recover_skip": "Nicht jetzt",
    "recover_intro_push": (
        "Bestätigt. Fügen Sie jetzt eine neue Anmeldemethode hinzu, damit Sie sich künftig "
        "ohne Ihr altes Gerät anmelden können."
    ),
    "recover_push": "Stattdessen ein Push-Gerät hinzufügen",
    "recover_push_only": "Push-Gerät hinzufügen",
    "recover_push_hint": (
        "Ein Push-Gerät ist ein Telefon oder Computer mit der App: Ein neuer Tab zeigt einen "
        "QR-Code, den Sie damit scannen."
    ),
    "recover_push_opened": (
        "Scannen Sie den QR-Code im neuen Tab mit der App auf Ihrem Telefon oder Computer, "
        "kommen Sie dann hierher zurück und tippen Sie auf Fertig."
    ),
    "manage_heading": "Ihre Anmeldemethoden",
    "manage_intro": "Entfernen Sie, was Sie nicht mehr haben, etwa ein verlorenes Telefon.",
    "manage_none": "Keine Anmeldemethoden mehr.",
    "remove": "Entfernen",
    "removed": "Entfernt.",
    "done": "Fertig",
    "method_passkey": "Passkey",
    "method_push": "App auf Ihrem Gerät",
    "method_security_key": "Sicherheitsschlüssel",
    "method_email_otp": "Codes per E-Mail",
    "method_email_magic_link": "Links per E-Mail",
    "method_sms": "Codes per SMS",
    "method_whatsapp": "Codes per WhatsApp",
    "method_authenticator_app": "Authenticator-App",
    "method_recovery_code": "Wiederherstellungscodes",
}

FRENCH = {
    "title_sign_in": "Confirmez votre identité",
    "title_enrol": "Créer une clé d'accès",
    "intro_sign_in": "{tenant} doit confirmer qu'il s'agit bien de vous.",
    "intro_enrol": (
        "Créez une clé d'accès pour {tenant} : vous confirmerez votre identité avec votre "
        "empreinte, votre visage ou le verrouillage de l'écran."
    ),
    "passkey_button": "Continuer avec une clé d'accès",
    "enrol_button": "Créer une clé d'accès",
    "push_heading": "Approuvez sur votre appareil",
    "push_instructions": "Saisissez ce nombre dans l'application {tenant} sur votre appareil :",
    "push_instructions_no_code": "Approuvez la demande dans l'application {tenant}.",
    "verification_code_label": "Nombre à saisir sur votre appareil",
    "push_send": "Envoyer une demande à mon appareil",
    "push_send_again": "Envoyer une nouvelle demande",
    "push_waiting": "En attente de votre appareil…",
    "push_expired": "La demande a expiré avant d'avoir reçu une réponse.",
    "push_declined": "La demande a été refusée sur votre appareil.",
    "push_rate_limited": "Trop de demandes envoyées. Patientez quelques minutes et réessayez.",
    "show_push": "Utiliser plutôt mon appareil",
    "cancel": "Annuler",
    "close": "Fermer",
    "passkey_waiting": "Suivez les instructions de votre navigateur…",
    "checking": "Vérification…",
    "success": "C'est confirmé.",
    "success_close": "C'est confirmé. Vous pouvez fermer cette page.",
    "returning": "Retour vers {tenant}…",
    "canceled": "Annulé. Vous pouvez fermer cette page.",
    "passkey_canceled": "La demande de clé d'accès a été fermée ou a expiré. Réessayez.",
    "passkey_exists": "Cet appareil a déjà une clé d'accès pour votre compte.",
    "passkey_refused": "Cette clé d'accès ne peut pas être utilisée ici.",
    "passkeys_unsupported": "Ce navigateur ne prend pas en charge les clés d'accès.",
    "unavailable_no_public_url": (
        "Les clés d'accès ne sont pas disponibles ici : le serveur n'a pas d'URL publique."
    ),
    "unavailable_rp_id_elsewhere": (
        "Les clés d'accès de {rp_id} ne peuvent pas être utilisées sur {host}, où se trouve "
        "cette page."
    ),
    "nothing_offered": "Impossible de confirmer votre identité sur cette page. Contactez {tenant}.",
    "network_error": "Le serveur est injoignable. Vérifiez votre connexion et réessayez.",
    "error_generic": "Une erreur s'est produite. Réessayez.",
    "redirect_refused": "Cette page ne peut pas vous renvoyer vers une adresse hors de {tenant}.",
    "error_title": "Ce lien ne peut pas être utilisé",
    "invalid_token": "Ce lien n'est pas valide. Revenez en arrière et recommencez.",
    "expired_token": "Ce lien a expiré. Revenez en arrière et recommencez.",
    "action_not_found": "Cette demande n'existe plus. Revenez en arrière et recommencez.",
    "token_used": "Ce lien a déjà été utilisé.",
    "action_blocked": "Cette demande a été bloquée.",
    "try_another_way": "Essayer autrement",
    "lost_device": "J'ai perdu mon appareil",
    "fallback_heading": "Autres moyens de confirmer votre identité",
    "fallback_email_otp": "M'envoyer un code par e-mail",
    "fallback_sms": "M'envoyer un code par SMS",
    "fallback_whatsapp": "M'envoyer un code sur WhatsApp",
    "fallback_authenticator_app": "Utiliser un code de mon application d'authentification",
    "fallback_security_key": "Utiliser ma clé de sécurité",
    "fallback_email_magic_link": "M'envoyer un lien de connexion par e-mail",
    "fallback_recovery_code": "Utiliser un code de récupération",
    "fallback_offered": "Cela n'a pas fonctionné. Vous pouvez essayer autrement ci-dessous.",
    "code_label_email_otp": "Saisissez le code reçu par e-mail",
    "code_label_sms": "Saisissez le code reçu par SMS",
    "code_label_whatsapp": "Saisissez le code reçu sur WhatsApp",
    "code_label_authenticator_app": "Saisissez le code de votre application d'authentification",
    "code_label_recovery_code": "Saisissez l'un de vos codes de récupération",
    "code_submit": "Confirmer",
    "code_resend": "Envoyer un nouveau code",
    "code_sent": "Code envoyé.",
    "code_invalid": "Ce code est erroné ou a expiré. Vérifiez-le et réessayez.",
    "code_max_attempts": "Trop de codes erronés. Demandez-en un nouveau.",
    "magic_link_sent": (
        "Nous vous avons envoyé un lien. Ouvrez-le (sur n'importe quel appareil) et confirmez-y"
        " ; cette page continuera d'elle-même."
    ),
    "delivery_not_configured": "{tenant} ne peut pas l'envoyer pour le moment. Essayez autrement.",
    "security_key_waiting": "Utilisez votre clé de sécurité…",
    "recover_intro": (
        "C'est confirmé. Créez maintenant une clé d'accès sur cet appareil pour vous connecter "
        "la prochaine fois sans l'ancien."
    ),
    "recover_skip": "Pas maintenant",
    "recover_intro_push": (
        "C'est confirmé. Ajoutez maintenant un nouveau moyen de connexion pour vous connecter "
        "la prochaine fois sans l'ancien."
    ),
    "recover_push": "Ajouter plutôt un appareil push",
    "recover_push_only": "Ajouter un appareil push",
    "recover_push_hint": (
        "Un appareil push est un téléphone ou un ordinateur avec l'application : un nouvel "
        "onglet affiche un QR code à scanner avec celle-ci."
    ),
    "recover_push_opened": (
        "Scannez le QR code du nouvel onglet avec l'application de votre téléphone ou "
        "ordinateur, puis revenez ici et appuyez sur Terminé."
    ),
    "manage_heading": "Vos moyens de connexion",
    "manage_intro": "Supprimez ceux que vous n'avez plus, comme un téléphone perdu.",
    "manage_none": "Plus aucun moyen de connexion.",
    "remove": "Supprimer",
    "removed": "Supprimé.",
    "done": "Terminé",
    "method_passkey": "Clé d'accès",
    "method_push": "Application sur votre appareil",
    "method_security_key": "Clé de sécurité",
    "method_email_otp": "Codes par e-mail",
    "method_email_magic_link": "Liens par e-mail",
    "method_sms": "Codes par SMS",
    "method_whatsapp": "Codes sur WhatsApp",
    "method_authenticator_app": "Application d'authentification",
    "method_recovery_code": "Codes de récupération",
}

TRANSLATIONS: Mapping[str, Mapping[str, str]] = {"en": ENGLISH, "de": GERMAN, "fr": FRENCH}

# The email magic link's page (pages/magic_link.py); one heading and message per state.
MAGIC_LINK: Mapping[str, Mapping[str, str]] = {
    "en": {
        "title_ready": "Confirm it's you",
        "title_confirmed": "It's confirmed",
        "title_unknown": "Link not valid",
        "title_expired": "Link expired",
        "title_used": "Link already used",
        "ready": "Confirm that it's you signing in to {tenant}.",
        "ready_email": "Confirm that it's you signing in to {tenant} with {email}.",
        "ready_note": "This link works once and expires ten minutes after it was sent.",
        "confirm": "Confirm it's me",
        "confirmed": ("Confirmed. You can close this tab and return to the device you started on."),
        "expired": "This link has expired. Go back to where you started and ask for a new one.",
        "used": (
            "This link has already been used. If that was not you, go back to where you "
            "started and ask for a new one."
        ),
        "unknown": (
            "This link is not valid. Check that you opened the whole link from the email, or "
            "ask for a new one."
        ),
    },
    "de": {
        "title_ready": "Bestätigen Sie, dass Sie es sind",
        "title_confirmed": "Bestätigt",
        "title_unknown": "Link ungültig",
        "title_expired": "Link abgelaufen",
        "title_used": "Link bereits verwendet",
        "ready": "Bestätigen Sie, dass Sie es sind, der sich bei {tenant} anmeldet.",
        "ready_email": (
            "Bestätigen Sie, dass Sie es sind, der sich bei {tenant} mit {email} anmeldet."
        ),
        "ready_note": (
            "Dieser Link funktioniert einmal und läuft zehn Minuten nach dem Versand ab."
        ),
        "confirm": "Ja, ich bin es",
        "confirmed": (
            "Bestätigt. Sie können diesen Tab schließen und zu dem Gerät zurückkehren, auf dem "
            "Sie begonnen haben."
        ),
        "expired": (
            "Dieser Link ist abgelaufen. Gehen Sie dorthin zurück, wo Sie begonnen haben, und "
            "fordern Sie einen neuen an."
        ),
        "used": (
            "Dieser Link wurde bereits verwendet. Falls Sie das nicht waren, gehen Sie dorthin "
            "zurück, wo Sie begonnen haben, und fordern Sie einen neuen an."
        ),
        "unknown": (
            "Dieser Link ist ungültig. Prüfen Sie, ob Sie den ganzen Link aus der E-Mail "
            "geöffnet haben, oder fordern Sie einen neuen an."
        ),
    },
    "fr": {
        "title_ready": "Confirmez votre identité",
        "title_confirmed": "C'est confirmé",
        "title_unknown": "Lien non valide",
        "title_expired": "Lien expiré",
        "title_used": "Lien déjà utilisé",
        "ready": "Confirmez que c'est bien vous qui vous connectez à {tenant}.",
        "ready_email": "Confirmez que c'est bien vous qui vous connectez à {tenant} avec {email}.",
        "ready_note": "Ce lien ne fonctionne qu'une fois et expire dix minutes après son envoi.",
        "confirm": "C'est bien moi",
        "confirmed": (
            "C'est confirmé. Vous pouvez fermer cet onglet et revenir à l'appareil sur lequel "
            "vous avez commencé."
        ),
        "expired": (
            "Ce lien a expiré. Revenez là où vous avez commencé et demandez-en un nouveau."
        ),
        "used": (
            "Ce lien a déjà été utilisé. Si ce n'était pas vous, revenez là où vous avez "
            "commencé et demandez-en un nouveau."
        ),
        "unknown": (
            "Ce lien n'est pas valide. Vérifiez que vous avez ouvert le lien complet de l'e-mail, "
            "ou demandez-en un nouveau."
        ),
    },
}

# The push enrolment pages (pages/push_links.py): the landing page, the offer, the QR code.
PUSH_ENROLMENT: Mapping[str, Mapping[str, str]] = {
    "en": {
        "title": "Add a push device",
        "landing": (
            "This is a push enrolment link. Scan its QR code with the app on your phone, or on "
            "a computer run this command with the whole link:"
        ),
        "landing_note": "It enrols one device and expires 10 minutes after it was made.",
        "offer": (
            "Show a QR code that adds one push device to your account: a phone or a computer "
            "with the app. It expires after 10 minutes."
        ),
        "show": "Show the QR code",
        "scan": "Scan this code with the app on your phone or computer. It enrols one device.",
        "computer": "On a computer, run this command with the link below:",
        "expires": "Expires at",
        "link": "Link",
        "after": "Once your device is added, you can close this page.",
        "refused_token": "This link is not valid or has expired. Go back and start again.",
        "refused": "A push device cannot be added with this link now.",
    },
    "de": {
        "title": "Push-Gerät hinzufügen",
        "landing": (
            "Dies ist ein Link zum Hinzufügen eines Push-Geräts. Scannen Sie seinen QR-Code mit "
            "der App auf Ihrem Telefon oder führen Sie auf einem Computer diesen Befehl mit dem "
            "ganzen Link aus:"
        ),
        "landing_note": ("Er fügt ein Gerät hinzu und läuft 10 Minuten nach seiner Erstellung ab."),
        "offer": (
            "Zeigen Sie einen QR-Code an, der Ihrem Konto ein Push-Gerät hinzufügt: ein Telefon "
            "oder einen Computer mit der App. Er läuft nach 10 Minuten ab."
        ),
        "show": "QR-Code anzeigen",
        "scan": (
            "Scannen Sie diesen Code mit der App auf Ihrem Telefon oder Computer. Er fügt ein "
            "Gerät hinzu."
        ),
        "computer": "Führen Sie auf einem Computer diesen Befehl mit dem Link unten aus:",
        "expires": "Läuft ab um",
        "link": "Link",
        "after": "Sobald Ihr Gerät hinzugefügt ist, können Sie diese Seite schließen.",
        "refused_token": (
            "Dieser Link ist ungültig oder abgelaufen. Gehen Sie zurück und beginnen Sie erneut."
        ),
        "refused": "Mit diesem Link kann jetzt kein Push-Gerät hinzugefügt werden.",
    },
    "fr": {
        "title": "Ajouter un appareil push",
        "landing": (
            "Ceci est un lien d'ajout d'appareil push. Scannez son QR code avec l'application "
            "de votre téléphone, ou sur un ordinateur lancez cette commande avec le lien "
            "complet :"
        ),
        "landing_note": "Il ajoute un appareil et expire 10 minutes après sa création.",
        "offer": (
            "Affichez un QR code qui ajoute un appareil push à votre compte : un téléphone ou un "
            "ordinateur avec l'application. Il expire au bout de 10 minutes."
        ),
        "show": "Afficher le QR code",
        "scan": (
            "Scannez ce code avec l'application de votre téléphone ou ordinateur. Il ajoute un "
            "appareil."
        ),
        "computer": "Sur un ordinateur, lancez cette commande avec le lien ci-dessous :",
        "expires": "Expire à",
        "link": "Lien",
        "after": "Une fois votre appareil ajouté, vous pouvez fermer cette page.",
        "refused_token": "Ce lien n'est pas valide ou a expiré. Revenez en arrière et recommencez.",
        "refused": "Impossible d'ajouter un appareil push avec ce lien pour le moment.",
    },
}


def accepted_languages(header: str | None) -> list[str]:
    """The tags of an `Accept-Language` header, in the order the browser sent them."""
    return [part.split(";")[0].strip() for part in (header or "").split(",") if part.strip()]


def choose_language(candidates: Iterable[str | None]) -> str:
    """The first candidate (a BCP 47 tag such as `de-CH`) we have a translation for."""
    for candidate in candidates:
        primary = (candidate or "").replace("_", "-").split("-")[0].lower()
        if primary in TRANSLATIONS:
            return primary
    return DEFAULT_LANGUAGE


def page_language(accept_language: str | None, *locales: str | None) -> str:
    """The language of a page: the first of `locales` (the track's, the user's) we have,
    else the browser's `Accept-Language` header's first, else English."""
    return choose_language([*locales, *accepted_languages(accept_language)])


class _Values(dict[str, str]):
    """Placeholder values; one not given reads as empty rather than failing the page."""

    def __missing__(self, key: str) -> str:
        return ""


def texts(
    language: str,
    catalogue: Mapping[str, Mapping[str, str]] = TRANSLATIONS,
    **values: str,
) -> dict[str, str]:
    """Every text of `catalogue` (by default the challenge page's) in `language`, English
    where it lacks one, placeholders filled in."""
    english = catalogue[DEFAULT_LANGUAGE]
    chosen = catalogue.get(language, english)
    filled = _Values(values)
    return {key: chosen.get(key, text).format_map(filled) for key, text in english.items()}
