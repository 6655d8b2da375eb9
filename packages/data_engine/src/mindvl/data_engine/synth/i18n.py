"""Non-English captions and answers for the ``non_english_caption`` fault.

Sentences are long enough for a language identifier to be confident; the answer is the
English answer wrapped in a sentence of the same language, colour words translated."""

from __future__ import annotations

import numpy as np

LANGUAGES = ("de", "fr", "es", "zh")

CAPTIONS = {
    "de": {
        "caption": "Ein einfaches Bild mit {n} farbigen Formen, die auf einem einheitlichen Hintergrund verteilt sind.",
        "grounding": "Auf diesem Bild sind {n} verschiedene Gegenstände zu sehen, jeder an seiner eigenen Stelle.",
        "ocr": "Auf dem Bild steht deutlich lesbar der folgende Text: {text}. Die Schrift ist gut zu erkennen.",
        "chart": "Ein einfaches Diagramm mit beschrifteten Werten, das eine kleine Rechnung oder Statistik zeigt.",
    },
    "fr": {
        "caption": "Une image simple avec {n} formes colorées réparties sur un fond uni et sans motif.",
        "grounding": "Sur cette image, on voit {n} objets différents, chacun placé à son propre endroit.",
        "ocr": "Sur l'image, on peut lire clairement le texte suivant : {text}. Les lettres sont bien visibles.",
        "chart": "Un graphique simple avec des valeurs annotées, qui montre un petit calcul ou une statistique.",
    },
    "es": {
        "caption": "Una imagen sencilla con {n} formas de colores repartidas sobre un fondo liso y sin dibujos.",
        "grounding": "En esta imagen se ven {n} objetos distintos, cada uno colocado en su propio lugar.",
        "ocr": "En la imagen se puede leer claramente el siguiente texto: {text}. Las letras se ven muy bien.",
        "chart": "Un gráfico sencillo con valores anotados, que muestra un pequeño cálculo o una estadística.",
    },
    "zh": {
        "caption": "一张简单的图片，纯色背景上分布着{n}个彩色的几何形状。",
        "grounding": "这张图片里有{n}个不同的物体，每个物体都在自己的位置上。",
        "ocr": "图片上清楚地写着下面的文字：{text}。字迹很容易辨认。",
        "chart": "一张带有数值标注的简单图表，展示了一个小计算或统计结果。",
    },
}
ANSWERS = {
    "de": "Die Antwort lautet: {a}.",
    "fr": "La réponse est : {a}.",
    "es": "La respuesta es: {a}.",
    "zh": "答案是：{a}。",
}
COLOURS = {
    "de": {
        "red": "rot",
        "green": "grün",
        "blue": "blau",
        "yellow": "gelb",
        "purple": "lila",
        "orange": "orange",
        "grey": "grau",
        "white": "weiß",
        "black": "schwarz",
    },
    "fr": {
        "red": "rouge",
        "green": "vert",
        "blue": "bleu",
        "yellow": "jaune",
        "purple": "violet",
        "orange": "orange",
        "grey": "gris",
        "white": "blanc",
        "black": "noir",
    },
    "es": {
        "red": "rojo",
        "green": "verde",
        "blue": "azul",
        "yellow": "amarillo",
        "purple": "morado",
        "orange": "naranja",
        "grey": "gris",
        "white": "blanco",
        "black": "negro",
    },
    "zh": {
        "red": "红色",
        "green": "绿色",
        "blue": "蓝色",
        "yellow": "黄色",
        "purple": "紫色",
        "orange": "橙色",
        "grey": "灰色",
        "white": "白色",
        "black": "黑色",
    },
}


def translate(
    rng: np.random.Generator, category: str, n_objects: int, answer: str
) -> tuple[str, str]:
    """(caption, answer) in a language drawn from :data:`LANGUAGES`."""
    lang = LANGUAGES[int(rng.integers(len(LANGUAGES)))]
    caption = CAPTIONS[lang][category].format(n=n_objects, text=answer)
    return caption, ANSWERS[lang].format(a=COLOURS[lang].get(answer, answer))
